"""The reference side of benches/formats.rs: pyarrow (Parquet) and fastavro (Avro) on the
rows Sluice wrote, one thread, printed as rows of the same Markdown table.

    formats_reference.py SLUICE_PARQUET_FILE SCRATCH_DIR
"""

import io
import os
import sys
import time

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq

pa.set_cpu_count(1)
pa.set_io_thread_count(1)
source, scratch = sys.argv[1], sys.argv[2]
table = pq.read_table(source, use_threads=False)
rows = table.num_rows
records = table.to_pylist()


def row(what, tool, seconds, size=None):
    per_row = "" if size is None else f"{size / rows:.1f}"
    print(f"| {what} | {tool} | {rows / seconds:.0f} | {per_row} |")


path = os.path.join(scratch, "pyarrow.parquet")
started = time.perf_counter()
pq.write_table(table, path, compression="snappy")
row("Parquet write (snappy)", "pyarrow", time.perf_counter() - started, os.path.getsize(path))
started = time.perf_counter()
read = pq.read_table(path, use_threads=False)
row("Parquet read", "pyarrow", time.perf_counter() - started)
assert read.num_rows == rows
started = time.perf_counter()
read = pq.read_table(path, columns=["id", "price"], use_threads=False)
row("Parquet read, 2 of 8 columns", "pyarrow", time.perf_counter() - started)
assert read.num_rows == rows

schema = fastavro.parse_schema({
    "type": "record",
    "name": "record",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "auction", "type": "long"},
        {"name": "bidder", "type": "long"},
        {"name": "price", "type": "double"},
        {"name": "channel", "type": "string"},
        {"name": "url", "type": "string"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "extra", "type": ["null", "string"]},
    ],
})
path = os.path.join(scratch, "fastavro.avro")
started = time.perf_counter()
with open(path, "wb") as out:
    fastavro.writer(out, schema, records, codec="deflate")
row("Avro file write (deflate)", "fastavro", time.perf_counter() - started, os.path.getsize(path))
started = time.perf_counter()
with open(path, "rb") as f:
    n = sum(1 for _ in fastavro.reader(f))
row("Avro file read", "fastavro", time.perf_counter() - started)
assert n == rows
projected = fastavro.parse_schema({
    "type": "record",
    "name": "record",
    "fields": [{"name": "id", "type": "long"}, {"name": "price", "type": "double"}],
})
started = time.perf_counter()
with open(path, "rb") as f:
    n = sum(1 for _ in fastavro.reader(f, reader_schema=projected))
row("Avro file read, 2 of 8 columns", "fastavro", time.perf_counter() - started)
assert n == rows

started = time.perf_counter()
encoded = []
for r in records:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, r)
    encoded.append(buf.getvalue())
row("Avro records encode", "fastavro", time.perf_counter() - started, sum(map(len, encoded)))
started = time.perf_counter()
for e in encoded:
    fastavro.schemaless_reader(io.BytesIO(e), schema, None)
row("Avro records decode", "fastavro", time.perf_counter() - started)
