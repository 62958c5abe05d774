"""Reading and changing the organisation's settings; the clinic's time zone for others.

Changes take ``If-Match`` with the settings' ``ETag`` (428 without, 412 when stale), as
corrections do.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select, update

from kap_outcomes.auth.models import Organisation
from kap_outcomes.auth.service import Principal
from kap_outcomes.errors import not_found
from kap_outcomes.organisation.models import OrganisationSettings, OrganisationSettingsUpdate
from kap_outcomes.preconditions import check_if_match, precondition_failed
from kap_outcomes.rows import first, table_of

_orgs = table_of(Organisation)
NOUN = "organisation"


def _row(conn: Connection, organisation_id: str, *, for_update: bool = False) -> Organisation:
    query = select(_orgs).where(_orgs.c.id == organisation_id)
    row = first(conn, Organisation, query.with_for_update() if for_update else query)
    if row is None:
        raise not_found("Organisation")
    return row


def _public(row: Organisation) -> OrganisationSettings:
    return OrganisationSettings(
        id=row.id, slug=row.slug, timezone=row.timezone, version=row.settings_version
    )


def get_settings(conn: Connection, *, principal: Principal) -> OrganisationSettings:
    return _public(_row(conn, principal.organisation_id))


def replace_settings(
    conn: Connection,
    *,
    principal: Principal,
    if_match: str | None,
    data: OrganisationSettingsUpdate,
) -> OrganisationSettings:
    current = _row(conn, principal.organisation_id, for_update=True)
    check_if_match(if_match, current.settings_version, NOUN)
    result = conn.execute(
        update(_orgs)
        .where(_orgs.c.id == current.id, _orgs.c.settings_version == current.settings_version)
        .values(timezone=data.timezone, settings_version=current.settings_version + 1)
    )
    if result.rowcount != 1:
        raise precondition_failed(NOUN)
    return _public(_row(conn, current.id))


def clinic_zone(conn: Connection, *, organisation_id: str) -> ZoneInfo:
    """The organisation's time zone, for dates shown to people (clinical-rules.md section 8)."""
    name = conn.execute(select(_orgs.c.timezone).where(_orgs.c.id == organisation_id)).scalar()
    return ZoneInfo(name or "UTC")
