"""Async jobs: an order's archive built in the background, kept for a while, fetched later.

Modules: `models` (the job record and its states), `backend` (the storage interface),
`sqlite` (embedded backend and in-process worker), `redis` (scale-out backend on arq),
`worker` (the arq worker), `runner` (runs one job), `store` (archives on a shared directory),
`callbacks` (signed, guarded notifications), `sweeper` (leases and expiry), `keybox` (sealed
bring-your-own keys), `service` (what the routes call), `runtime` (wiring into the app).
"""
