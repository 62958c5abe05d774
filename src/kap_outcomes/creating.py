"""The one way a route creates something: :class:`Create`, a FastAPI dependency.

Every creating route (``/v1`` and FHIR, the ingest route included, and the one create
without a caller: a patient's app redeeming an enrollment code) declares one::

    SUBMIT = Create(AssessmentCreate, auth=current_principal, path_ids=("patient_id",))

    @router.post("/patients/{patient_id}/assessments", status_code=201, ...)
    async def submit_assessment(new: Annotated[Creation[AssessmentCreate], Depends(SUBMIT)]):
        return await new.respond(partial(service.submit, ...), located("/v1/assessments/{id}"))

and so reads, in one place and in one order: the caller (``auth``, a dependency:
``app.dependency_overrides`` reaches it, as it reaches the database, ``get_db``), then the id
path parameters, the ``Idempotency-Key`` and the JSON body, every problem of the three in one
422 list (FastAPI's own order: path, header, body), the same items on every route (an
OperationOutcome with the same issues under /fhir). :meth:`Creation.respond` runs the unit of
work, under the key when there is one
(:mod:`kap_outcomes.idempotency.service`), and answers 201 with the created resource's
headers. The route class (``AuditedRoute``) audits it like any request and, the tree of this
dependency holding nothing FastAPI must validate, calls it without FastAPI's per-request
solver (:mod:`kap_outcomes.presolved`): the busiest route needs no code of its own.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import orjson
from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, RootModel, ValidationError
from sqlalchemy import Connection

from kap_outcomes.auth.dependencies import current_principal, get_db
from kap_outcomes.auth.principal import Principal
from kap_outcomes.db import Database
from kap_outcomes.http import (
    IDEMPOTENCY_KEY_PARAMETER,
    MANUAL_BODIES,
    RESOURCE_ID_TEXT,
    path_id_parameter,
)
from kap_outcomes.idempotency.service import (
    KEY_RULE,
    Created,
    answer,
    fingerprint,
    idempotent,
    is_valid_key,
)
from kap_outcomes.preconditions import etag

M = TypeVar("M", bound=BaseModel)

Auth = Callable[..., Awaitable[Principal]]
CreatedHeaders = Callable[[Mapping[str, Any]], dict[str, str]]
"""The headers of a created resource's answer (``Location``, maybe ``ETag``) from its JSON."""

KEY_HEADER = "Idempotency-Key"


def located(path: str, *, versioned: bool = False) -> CreatedHeaders:
    """The headers of a resource created at ``path``, a template of its fields
    (``/v1/patients/{id}``); ``versioned``: its ``ETag`` too (what ``If-Match`` of a
    correction needs)."""

    def headers(created: Mapping[str, Any]) -> dict[str, str]:
        answered = {"Location": path.format_map(created)}
        if versioned:
            answered["ETag"] = etag(created["version"])
        return answered

    return headers


class FhirResource(BaseModel):
    """The body of a FHIR create: a JSON object (what is in it, the FHIR service reads)."""

    model_config = ConfigDict(extra="allow")

    @property
    def document(self) -> dict[str, Any]:
        return dict(self.__pydantic_extra__ or {})


class _Fields(Mapping[str, Any]):
    """A created model read as the mapping :data:`CreatedHeaders` take, without dumping it."""

    __slots__ = ("_model",)

    def __init__(self, model: BaseModel) -> None:
        self._model = model

    def __getitem__(self, name: str) -> Any:
        if isinstance(self._model, RootModel):
            return self._model.root[name]
        try:
            return getattr(self._model, name)
        except AttributeError:
            raise KeyError(name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(type(self._model).model_fields)

    def __len__(self) -> int:
        return len(type(self._model).model_fields)


@dataclass(slots=True)
class Creation(Generic[M]):
    """A create request read by :class:`Create`: who, what, under which key."""

    request: Request
    db: Database
    caller: Principal | None
    """None on the one create that has no caller (``auth=None``: an enrollment code)."""
    data: M
    key: str | None
    ids: dict[str, str] = field(default_factory=dict)
    replayable: bool = True

    @property
    def principal(self) -> Principal:
        if self.caller is None:
            raise RuntimeError("this create has no caller (auth=None)")
        return self.caller

    async def respond(
        self,
        create: Callable[[Connection], Created],
        headers: CreatedHeaders,
        *,
        status_code: int = 201,
        media_type: str = "application/json",
        condition: str = "",
    ) -> Response:
        """Run ``create`` (a unit of work) once per key and answer with what it created.

        ``condition`` (a conditional create's ``If-None-Exist``) is part of what makes two
        requests under one key the same request.
        """
        db = self.db
        if self.key is None:  # the common case: one serialization, no lookup
            created = await db.write(create)
            outcome = answer(created, status_code)
            fields: Mapping[str, Any] = (
                _Fields(created) if isinstance(created, BaseModel) else orjson.loads(outcome.body)
            )
            return Response(
                outcome.body,
                status_code=outcome.status_code,
                media_type=media_type,
                headers=headers(fields),
            )
        outcome = await db.write(
            idempotent(
                create,
                principal=self.principal,
                key=self.key,
                fingerprint=fingerprint(
                    self.request.method, self.request.url.path, self.data, condition
                ),
                status_code=status_code,
            )
        )
        answered = headers(orjson.loads(outcome.body))
        if outcome.replayed:
            answered["Idempotent-Replayed"] = "true"
        return Response(
            outcome.body, status_code=outcome.status_code, media_type=media_type, headers=answered
        )


NOT_REPLAYED = (
    "Not taken here: the answer holds a secret shown once, which is not kept to be shown again."
)


class Create(Generic[M]):
    """The dependency of a creating route (see the module docstring).

    ``replayable=False`` for a create whose answer holds a secret shown once (a token, a
    webhook's signing secret): there is nothing to replay, so the route takes no
    ``Idempotency-Key`` (and does not document one). ``body=None``: a create that takes
    no body (the request's path says everything). ``auth=None``: a create without a caller
    (the patient's app redeeming an enrollment code); it is not replayable, as there is no
    caller to own a key.
    """

    def __init__(
        self,
        body: type[M] | None,
        *,
        auth: Auth | None = current_principal,
        path_ids: Sequence[str] = (),
        replayable: bool = True,
        document_body: bool = True,
    ) -> None:
        if auth is None and replayable:
            raise ValueError("a create without a caller has no one to own its Idempotency-Key")
        self.body = body
        self.auth = auth
        self.path_ids = tuple(path_ids)
        self.replayable = replayable
        parameters = [
            inspect.Parameter(
                "request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request
            ),
            inspect.Parameter(
                "db",
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=Database,
                default=Depends(get_db),
            ),
        ]
        if auth is not None:
            parameters.append(
                inspect.Parameter(
                    "principal",
                    inspect.Parameter.POSITIONAL_OR_KEYWORD,
                    annotation=Principal,
                    default=Depends(auth),
                )
            )
        self.__signature__ = inspect.Signature(parameters)
        documented = [path_id_parameter(name) for name in self.path_ids]
        if replayable:
            documented.append(IDEMPOTENCY_KEY_PARAMETER)
        # (an operation with a caller lists its parameters even when there are none, as the
        # committed document always has)
        self.openapi_extra: dict[str, Any] = (
            {"parameters": documented} if documented or auth is not None else {}
        )
        if body is not None and document_body:
            MANUAL_BODIES[body.__name__] = body
            schema = {"$ref": f"#/components/schemas/{body.__name__}"}
            self.openapi_extra["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schema}},
            }

    async def __call__(
        self, request: Request, db: Database, principal: Principal | None = None
    ) -> Creation[M]:
        errors: list[dict[str, Any]] = []
        ids: dict[str, str] = {}
        for name in self.path_ids:
            try:
                ids[name] = RESOURCE_ID_TEXT.validate_python(request.path_params[name])
            except ValidationError as exc:
                errors.extend(
                    {**e, "loc": ("path", name, *e["loc"])} for e in exc.errors(include_input=False)
                )
        key = request.headers.get(KEY_HEADER) if self.replayable else None
        if key is not None and not is_valid_key(key):
            errors.append({"type": "value_error", "loc": ("header", KEY_HEADER), "msg": KEY_RULE})
        data: Any = None
        body = await request.body() if self.body is not None else None
        if self.body is None:
            pass  # a create without a body (an enrollment code)
        elif not body:
            errors.append({"type": "missing", "loc": ("body",), "msg": "Field required"})
        else:
            try:
                data = self.body.model_validate_json(body)
            except ValidationError as exc:
                errors.extend(
                    {**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_input=False)
                )
        if errors:
            raise RequestValidationError(errors)
        return Creation(
            request=request,
            db=db,
            caller=principal,
            data=data,
            key=key,
            ids=ids,
            replayable=self.replayable,
        )
