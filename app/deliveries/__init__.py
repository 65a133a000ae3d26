"""Deliveries: a link a photographer sends a client, and proof that the photos arrived.

A delivery names an order, what of it the recipient may take (variants, images), and the
rules of its link (expiry, PIN, download limit, locked until paid). The recipient reaches it
by an unguessable token that is stored only as its SHA-256. The service records, per archive
the recipient fetches, which byte ranges were written to them; once those cover the whole
archive the delivery is `delivered`.

Modules:

* `models` — the stored record, its events and status; byte-range arithmetic.
* `variants` — which variants exist and what download options each one means.
* `store` — the storage protocol; `sqlite` (embedded) and `redis` (scaled out) implement it.
* `service` — what the routes do: create, change, revoke, admit downloads, record bytes.
* `counting` — what admitting a download and recording served bytes do to the record.
* `pins` — what a PIN given for a delivery does to the record (failures, lock-out).
* `errors` — the errors the routes answer with.
* `previews` — the recipient's previews, watermarked while the delivery is locked.
* `runtime` — wiring into a web process.
"""
