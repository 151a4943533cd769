//! Validation of case files against `spec/schemas/case.schema.json` plus semantic checks.
