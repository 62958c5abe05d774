"""Every table, imported in one place so the metadata (and Alembic) sees them all."""

from kap_outcomes.alerts.models import Alert
from kap_outcomes.assessments.models import Assessment, AssessmentRevision
from kap_outcomes.audit.models import AuditEvent
from kap_outcomes.auth.models import ApiToken, EnrollmentCode, Organisation
from kap_outcomes.bulk.models import BulkExport, PatientGroup, PatientGroupMember
from kap_outcomes.care.models import CareSession, CareSessionRevision, Course
from kap_outcomes.caseload.models import PatientSummary
from kap_outcomes.dashboard.models import DashboardSession, SigninCode
from kap_outcomes.events.models import Event, EventConsumer
from kap_outcomes.fhir.models import FhirIdentifier
from kap_outcomes.idempotency.models import IdempotencyRecord
from kap_outcomes.patients.models import Patient
from kap_outcomes.policy.models import PolicyVersion
from kap_outcomes.signals.models import SignalState
from kap_outcomes.smart.models import SmartClient, SmartJti
from kap_outcomes.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
    "Alert",
    "ApiToken",
    "Assessment",
    "AssessmentRevision",
    "AuditEvent",
    "BulkExport",
    "CareSession",
    "CareSessionRevision",
    "Course",
    "DashboardSession",
    "EnrollmentCode",
    "Event",
    "EventConsumer",
    "FhirIdentifier",
    "IdempotencyRecord",
    "Organisation",
    "Patient",
    "PatientGroup",
    "PatientGroupMember",
    "PatientSummary",
    "PolicyVersion",
    "SignalState",
    "SigninCode",
    "SmartClient",
    "SmartJti",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]
