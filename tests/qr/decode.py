"""Decodes QR codes with an independent reader (zxing-cpp).

Without arguments: reads JSON [{"text": ..., "m": [[0|1, ...], ...]}, ...] on
stdin (from matrix.mjs) and prints, per item, the text zxing-cpp read (or
null). With `--png FILE`: prints the text of the QR code in a screenshot.
"""
import json
import sys

import numpy as np
import zxingcpp
from PIL import Image

if len(sys.argv) == 3 and sys.argv[1] == "--png":
    found = zxingcpp.read_barcodes(Image.open(sys.argv[2]).convert("L"))
    print(json.dumps({"text": found[0].text if found else None}))
    sys.exit(0)

out = []
for item in json.load(sys.stdin):
    m = np.array(item["m"], dtype=np.uint8)
    n = m.shape[0]
    img = np.full((n + 8, n + 8), 255, dtype=np.uint8)
    img[4:4 + n, 4:4 + n] = (1 - m) * 255
    big = Image.fromarray(img).resize(((n + 8) * 6, (n + 8) * 6), Image.NEAREST)
    found = zxingcpp.read_barcodes(big)
    out.append({"size": n, "text": found[0].text if found else None})
print(json.dumps(out))
