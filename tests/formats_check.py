"""Files and records for tests/formats.rs, written and checked with pyarrow and fastavro,
independently of Sluice.

    formats_check.py write DIR          Parquet (pyarrow) and Avro (fastavro) inputs in DIR
    formats_check.py check DIR          Sluice's outputs in DIR equal the inputs' rows
    formats_check.py records FILE       fastavro-encoded Kafka values, one hex line each
                                        (plain Avro, then Confluent-framed with id 7)
    formats_check.py decode FILE        Sluice's Kafka values (hex lines) decode with
                                        fastavro to the rows of `records`
    formats_check.py schema             the writer schema of `records` (JSON)

Every SQL type Sluice has, NULLs in every nullable column, arrays and maps.
"""

import datetime
import decimal
import io
import json
import os
import struct
import sys

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq

ROWS = 600
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def rows():
    out = []
    for i in range(ROWS):
        null = lambda k: i % k == 0
        at = datetime.datetime(2026, 12, 4, 0, 0, 0) + datetime.timedelta(milliseconds=i * 61_001)
        out.append({
            "id": i,
            "flag": None if null(5) else i % 2 == 0,
            "tiny": None if null(7) else (i % 200) - 100,
            "small": None if null(9) else (i * 37) % 30000 - 15000,
            "n": None if null(4) else i * 1_000_003 - 300_000_000,
            "f": None if null(6) else struct.unpack("f", struct.pack("f", i / 7.0))[0],
            "d": None if null(8) else i * 1.25 - 100.5,
            "name": None if null(11) else f"name-{i}-é\u2603",
            "raw": None if null(13) else bytes([i % 256, (i * 7) % 256, 0, 255]),
            "price": None if null(10) else decimal.Decimal(i * 1013 - 50_000).scaleb(-2),
            "day": None if null(12) else datetime.date(2026, 1, 1) + datetime.timedelta(days=i - 300),
            "at": None if null(14) else at,
            "ltz": None if null(15) else (at + datetime.timedelta(hours=3)).replace(tzinfo=datetime.timezone.utc),
            "tags": None if null(16) else [None if (i + j) % 5 == 0 else i * 10 + j for j in range(i % 4)],
            "attrs": None if null(17) else {f"k{j}": (None if j == 2 else i + j) for j in range(i % 3)},
        })
    return out


def arrow_schema():
    return pa.schema([
        pa.field("id", pa.int64(), nullable=False),
        ("flag", pa.bool_()),
        ("tiny", pa.int8()),
        ("small", pa.int16()),
        ("n", pa.int32()),
        ("f", pa.float32()),
        ("d", pa.float64()),
        ("name", pa.string()),
        ("raw", pa.binary()),
        ("price", pa.decimal128(10, 2)),
        ("day", pa.date32()),
        ("at", pa.timestamp("ms")),
        ("ltz", pa.timestamp("ms", tz="UTC")),
        ("tags", pa.list_(pa.int64())),
        ("attrs", pa.map_(pa.string(), pa.int64())),
    ])


def nullable(t):
    return ["null", t]


def avro_schema():
    return {
        "type": "record",
        "name": "Event",
        "namespace": "test.sluice",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "flag", "type": nullable("boolean")},
            {"name": "tiny", "type": nullable("int")},
            {"name": "small", "type": nullable("int")},
            {"name": "n", "type": nullable("int")},
            {"name": "f", "type": nullable("float")},
            {"name": "d", "type": nullable("double")},
            {"name": "name", "type": nullable("string")},
            {"name": "raw", "type": nullable("bytes")},
            {"name": "price", "type": nullable({"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2})},
            {"name": "day", "type": nullable({"type": "int", "logicalType": "date"})},
            {"name": "at", "type": nullable({"type": "long", "logicalType": "timestamp-millis"})},
            {"name": "ltz", "type": nullable({"type": "long", "logicalType": "timestamp-millis"})},
            {"name": "tags", "type": nullable({"type": "array", "items": nullable("long")})},
            {"name": "attrs", "type": nullable({"type": "map", "values": nullable("long")})},
        ],
    }


def canonical(row):
    """A row as comparable plain values: timestamps as ms since the epoch (naive ones as
    UTC), decimals as text, bytes as hex, maps as sorted pairs."""
    out = {}
    for k, v in row.items():
        if isinstance(v, datetime.datetime):
            aware = v if v.tzinfo else v.replace(tzinfo=datetime.timezone.utc)
            v = round((aware - EPOCH).total_seconds() * 1000)
        elif isinstance(v, datetime.date):
            v = v.isoformat()
        elif isinstance(v, decimal.Decimal):
            v = str(v.quantize(decimal.Decimal("0.01")))
        elif isinstance(v, bytes):
            v = v.hex()
        elif isinstance(v, dict):
            v = sorted(v.items())
        elif isinstance(v, list) and v and isinstance(v[0], tuple):
            v = sorted(v)  # pyarrow reads a map as a list of pairs
        elif isinstance(v, float) and k == "f":
            v = struct.unpack("f", struct.pack("f", v))[0]
        out[k] = v
    return out


def expected():
    return [canonical(r) for r in rows()]


def compare(name, actual):
    want = expected()
    got = sorted((canonical(r) for r in actual), key=lambda r: r["id"])
    if len(got) != len(want):
        sys.exit(f"{name}: {len(got)} rows, expected {len(want)}")
    for g, w in zip(got, want):
        if g != w:
            diff = {k: (g.get(k), w[k]) for k in w if g.get(k) != w[k]}
            sys.exit(f"{name}: row {w['id']} differs (got, expected): {diff}")
    print(f"{name}: {len(got)} rows equal")


def files(directory, suffix):
    found = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
        for n in names:
            if n.startswith((".", "_")):
                continue
            if n.endswith(suffix):
                found.append(os.path.join(root, n))
            else:
                sys.exit(f"unexpected file {os.path.join(root, n)}")
    return sorted(found)


def write(directory):
    os.makedirs(f"{directory}/in_parquet", exist_ok=True)
    os.makedirs(f"{directory}/in_avro", exist_ok=True)
    table = pa.Table.from_pylist(rows(), schema=arrow_schema())
    pq.write_table(table, f"{directory}/in_parquet/events.parquet", row_group_size=250, compression="zstd")
    with open(f"{directory}/in_avro/events.avro", "wb") as out:
        fastavro.writer(out, fastavro.parse_schema(avro_schema()), rows(), codec="deflate")


def check(directory):
    parquet = files(f"{directory}/out_parquet", ".parquet")
    if not parquet:
        sys.exit("no Parquet output")
    table = pa.concat_tables([pq.read_table(p) for p in parquet])
    compare("Parquet written by Sluice, read by pyarrow", table.to_pylist())
    avro = []
    for p in files(f"{directory}/out_avro", ".avro"):
        with open(p, "rb") as f:
            avro.extend(fastavro.reader(f))
    compare("Avro written by Sluice, read by fastavro", avro)


def records(path):
    schema = fastavro.parse_schema(avro_schema())
    with open(path, "w") as out:
        for r in rows():
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, schema, r)
            out.write(buf.getvalue().hex() + "\n")
        for r in rows():
            buf = io.BytesIO()
            buf.write(b"\x00" + struct.pack(">I", 7))
            fastavro.schemaless_writer(buf, schema, r)
            out.write(buf.getvalue().hex() + "\n")


def decode(path):
    """Sluice's plain Avro values, read with the schema Sluice derives (Flink's), given on
    the second argument as JSON, then Confluent-framed ones with their id's schema."""
    writer = fastavro.parse_schema(json.loads(open(sys.argv[3]).read()))
    got = []
    with open(path) as f:
        for line in f:
            got.append(fastavro.schemaless_reader(io.BytesIO(bytes.fromhex(line.strip())), writer, None))
    compare("Avro records written by Sluice, read by fastavro", got)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "write":
        write(args[0])
    elif command == "check":
        check(args[0])
    elif command == "records":
        records(args[0])
    elif command == "decode":
        decode(args[0])
    elif command == "schema":
        print(json.dumps(avro_schema()))
    else:
        sys.exit(f"unknown command {command}")
