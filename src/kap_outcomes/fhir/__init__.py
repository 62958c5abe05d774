"""FHIR R4 adapter: the same assessments, served and ingested as FHIR 4.0.1 resources."""
