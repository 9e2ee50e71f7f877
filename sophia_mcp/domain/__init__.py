"""The records and value types: calls, transcripts, analysis results, CRM records, documents, weights."""
