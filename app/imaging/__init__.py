"""Decoding and rendering images under one policy: scan cap, pixel bound, deadline, pool.

`decoding` holds the policy and its checks, `pool` the bounded decode pool, `presets` the
download presets, `render` the renderer of a preset.
"""
