"""The command line behind `setup_test_order.py`: create an order, wait for it, download its ZIP.

Two ways to reach Autoenhance: directly with AUTOENHANCE_API_KEY at AUTOENHANCE_API_BASE (the
real API, or `python -m app.sandbox`), through the same client and order-creation code the
service uses; or through a running service (`--service-url`), which also serves the ZIP.

One module per concern:

- `usage`     the flags, the exit codes, `CliError`, the checks made before any work;
- `progress`  progress bars, the processing status, waiting for it;
- `direct`    the Autoenhance API reached with the caller's key;
- `service`   the batch downloader service reached over HTTP;
- `download`  the archive download, its retries and its resume protocol (Range + If-Range);
- `main`      one run, and what to say after a failure about running again.

The package sits on top of the service's layers: it uses `app.core.config` (the API's defaults),
`app.upstream` and `app.services` (the direct path), and nothing in `app` imports it.
"""
