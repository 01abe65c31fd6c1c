"""Ingestion: validation and writes shared by the API, the importers and the CLI."""
