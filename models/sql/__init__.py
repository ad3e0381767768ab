"""Hand-written SQL support: the dialect and parameter collector (params, pure) and the read helpers (reads)."""
