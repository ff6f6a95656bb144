"""The Batch API: a file of requests run behind interactive traffic, at the batch price."""
