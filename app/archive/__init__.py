"""The archive pipeline: one order's images in, one deterministic, resumable ZIP out.

`plan.py` decides what an archive holds (with `naming.py` and `listing.py`'s manifest.json);
`prefetch.py` fetches ahead of the writer under `fairness.py`'s fair shares, `rendering.py`
renders variants; `stream.py`'s `BatchArchive` writes the entries in order with
`zipformat.py`'s writer; `manifest.py` records each entry as it streams and `resume.py`
replays the records to continue from any byte; `validators.py` names an archive's bytes
(ETag, version, store key) and `http_rules.py` reads a request's Range and conditions against
them; `downloads.py`'s `Downloads` owns an archive's life and gives a route an `outcomes.py`
answer. No FastAPI in here.
"""
