"""The long-running agent: config, process model, metrics, traces, exporters, HTTP API (I/O layer)."""
