"""The zstd dictionary of container format 2's JSON records (frozen: docs/FORMAT.md, 1.1).

Header, chunk descriptors and footer are small JSON documents that repeat the same keys
in every file; zstd has no statistics for a 200-byte frame, so a shared *raw content*
dictionary (the bytes below as prior history, no dictionary id) halves them: 727 -> 311
bytes on a 5-column table, 2.4% of a 17 kB file. These bytes are part of the format and
must never change; a test pins their xxh64.
"""

from __future__ import annotations

JSON_DICT_V1 = (
    b'{"format":"balerc","required_features":["autoencoder","decoder-float64",'
    b'"grouped-residuals","lean-decoder","lossless","quantized","residual"],'
    b'"producer":{"balerc":"0.1.0","python":"3.12.0","numpy":"2.0.0","zstandard":"0.25.0"},'
    b'"created":"2026-01-01T00:00:00Z","chunk_rows":65536,"schema":{"columns":['
    b'{"name":"__event__","kind":"int","dtype":"<i8","codec":"lossless"},'
    b'{"name":"label","kind":"string","dtype":"str","codec":"lossless"},'
    b'{"name":"flag","kind":"bool","dtype":"|b1","codec":"lossless"},'
    b'{"name":"x","kind":"float","dtype":"<f4","codec":"autoencoder"},'
    b'{"name":"y","kind":"float","dtype":"<f8","codec":"autoencoder"},'
    b'{"name":"z","kind":"float","dtype":"<f8","codec":"autoencoder"}],'
    b'"source":{"format":"root","path":"","tree":"Events","rows":0,"generator":"dimuon","seed":0}},'
    b'"coders":[{"id":"autoencoder","features":["quantized","residual","autoencoder",'
    b'"decoder-float64","lean-decoder","grouped-residuals"],"columns":[0,1,2,3,4,5,6,7,8,9],'
    b'"bound":{"mode":"rel","value":0.001},"abs_bounds":[0.001,0.0001],'
    b'"bound":{"mode":"pwrel","value":0.0005},"abs_bounds":null,'
    b'"margin":3.814697265625e-06,"zstd_level":19,"latent_step":0.03125,'
    b'"model":{"columns":[],"anchors":[],"predicted":[],"latent_dim":0,"latent_bits":6,'
    b'"opset":17,"normalization":[{"name":"","offset":0.0,"scale":1.0}],'
    b'"decoder_io":"float64","exact":[]},"exact_drift":9.313225746154785e-10,'
    b'"decoder_sha256":"","encoder_sha256":null,"decoder_attachment":"decoder.lean.onnx.zst",'
    b'"decoder_attachment_sha256":""},{"id":"lossless","columns":[0,1],"zstd_level":19}],'
    b'"format_version":[2,0],"attachments":[["decoder.lean.onnx.zst",0,""]]}'
    b'{"index":0,"rows":65536,"streams":[["qgroup",0,""],["latents",0,""],["res/0",0,""],'
    b'["sign/0",0,""],["exc/0",0,""],["col/0",0,""]],"meta":{"0":{"modes":"qqqgggppprrr",'
    b'"grouped":1,"grouped":2,"rel_eps":[0.0,0.000498046875],"offsets":[0,1,-1]},"1":{}}}'
    b'{"rows":0,"chunks":[{"offset":0,"size":0,"rows":65536}],"summary":{"raw_bytes":0,'
    b'"max_error":[0.0,0.001],"modes":{"q":1,"g":1,"p":1,"r":1,"a":1}}}'
)
