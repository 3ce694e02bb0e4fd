#!/usr/bin/env python3
"""Checks golden outputs against an independent computation.

The golden tests (tests/golden.rs) compare Sluice's output with tests/sql/*.out, which
were first written from Sluice's own output. For the scripts over tests/sql/data, this
script computes the expected rows again in plain Python, from the data and the SQL's
meaning, and compares them with the .out files, so a wrong blessed output is caught.
It prints one line per script and a closing 'N passed, N failed' line; exit 1 on a
mismatch.
"""
import json
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SQL = ROOT / "tests" / "sql"


def orders():
    return [json.loads(line) for line in (SQL / "data" / "orders.json").read_text().splitlines() if line.strip()]


def double(x):
    """A DOUBLE as Flink's print sink shows it (Java's Double.toString for these values)."""
    return repr(float(x))


def row(*values):
    return "+I[" + ", ".join(values) + "]"


def timestamp_text(ms):
    """A TIMESTAMP(3) (milliseconds since the epoch) as the print sink shows it."""
    from datetime import datetime, timedelta

    shown = (datetime(1970, 1, 1) + timedelta(milliseconds=ms)).isoformat()
    return shown[:-3] if ms % 1000 else shown


def bids_hour():
    """The bids of data/bids_hour.json as (time in ms since the epoch, price, item)."""
    from datetime import datetime

    bids = []
    for line in (SQL / "data" / "bids_hour.json").read_text().splitlines():
        bid = json.loads(line)
        t = int((datetime.fromisoformat(bid["bidtime"]) - datetime(1970, 1, 1)).total_seconds() * 1000)
        bids.append((t, bid["price"], bid["item"]))
    return bids


def json_file_projection_filter():
    # SELECT order_id, UPPER(customer) || '/' || category, amount * quantity,
    #   CASE WHEN amount * quantity >= 500 THEN 'large' ELSE 'medium' END
    # FROM orders WHERE amount > 100 AND category <> 'books'
    out = []
    for o in orders():
        if o["amount"] > 100 and o["category"] != "books":
            total = o["amount"] * o["quantity"]
            out.append(row(str(o["order_id"]), o["customer"].upper() + "/" + o["category"], double(total),
                           "large" if total >= 500 else "medium"))
    return out


def group_by_aggregates():
    # SELECT category, COUNT(*), SUM(quantity), MIN(amount), MAX(amount), ROUND(AVG(amount), 2)
    # FROM orders GROUP BY category
    groups = {}
    for o in orders():
        groups.setdefault(o["category"], []).append(o)
    out = []
    for category, rows in groups.items():
        amounts = [r["amount"] for r in rows]
        average = Decimal(repr(sum(amounts) / len(amounts))).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        out.append(row(category, str(len(rows)), str(sum(r["quantity"] for r in rows)), double(min(amounts)),
                       double(max(amounts)), double(average)))
    return out


def window_tvfs():
    # TUMBLE(10 min, offset 1 min), HOP(slide 5 min, size 10 min) and CUMULATE(step 2 min,
    # size 10 min) over the bids: Flink's windows, each [start, end) with start aligned to
    # the epoch shifted by the offset, and window_time = end - 1 ms.
    from datetime import datetime, timedelta

    minute = 60_000
    epoch = datetime(1970, 1, 1)

    def start(t, offset, size):
        return t - (t - offset) % size

    def text(ms):
        shown = (epoch + timedelta(milliseconds=ms)).isoformat()
        return shown[:-3] if ms % 1000 else shown

    def tumble(t):
        s = start(t, minute, 10 * minute)
        return [(s, s + 10 * minute)]

    def hop(t):
        size, slide = 10 * minute, 5 * minute
        starts = range(start(t, 0, slide), t - size, -slide)
        return [(s, s + size) for s in starts]

    def cumulate(t):
        size, step = 10 * minute, 2 * minute
        s = start(t, 0, size)
        ends = range(start(t, 0, step) + step, s + size + 1, step)
        return [(s, e) for e in ends]

    out = []
    for line in (SQL / "data" / "bids.json").read_text().splitlines():
        bid = json.loads(line)
        t = int((datetime.fromisoformat(bid["bidtime"]) - epoch).total_seconds() * 1000)
        for name, windows in (("tumble", tumble), ("hop", hop), ("cumulate", cumulate)):
            for s, e in windows(t):
                out.append(row(name, bid["item"], double(bid["price"]), text(s), text(e), text(e - 1)))
    return out


def window_aggregates():
    # The five queries of 12_window_aggregates.sql, computed from Flink's window rules: a
    # bid at t is in TUMBLE [s, s + size) with s = t - t % size; in HOP(slide, size) windows
    # starting at the slide boundaries in (t - size, t]; in CUMULATE(step, size) windows
    # [s, e) with s its size window's start and e each step boundary after t up to s + size.
    # No bid is late (out of order by less than the watermark's bound), so every bid counts.
    from datetime import datetime, timedelta

    minute = 60_000
    epoch = datetime(1970, 1, 1)

    def text(ms):
        shown = (epoch + timedelta(milliseconds=ms)).isoformat()
        return shown[:-3] if ms % 1000 else shown

    def value(x):
        return "null" if x is None else double(x)

    bids = []
    for line in (SQL / "data" / "bids_hour.json").read_text().splitlines():
        bid = json.loads(line)
        t = int((datetime.fromisoformat(bid["bidtime"]) - epoch).total_seconds() * 1000)
        bids.append((t, bid["price"], bid["item"]))

    def tumble(t, size):
        return [(t - t % size, t - t % size + size)]

    def hop(t, slide, size):
        return [(s, s + size) for s in range(t - t % slide, t - size, -slide)]

    def cumulate(t, step, size):
        s = t - t % size
        return [(s, e) for e in range(t - t % step + step, s + size + 1, step)]

    def groups(windows, key):
        out = {}
        for bid in bids:  # in file order: the order a single file split reads them
            for w in windows(bid[0]):
                out.setdefault((w, key(bid)), []).append(bid)
        return out

    out = []
    for ((s, e), item), rows in groups(lambda t: tumble(t, 10 * minute), lambda b: b[2]).items():
        prices = [p for _, p, _ in rows if p is not None]
        out.append(row("tumble", text(s), text(e), item, str(len(rows)), str(len(prices)),
                       value(sum(prices) if prices else None), value(min(prices) if prices else None),
                       value(max(prices) if prices else None)))
    for ((s, e), _), rows in groups(lambda t: hop(t, 5 * minute, 15 * minute), lambda b: None).items():
        prices = [p for _, p, _ in rows if p is not None]
        out.append(row("hop", text(s), text(e), str(len({i for _, _, i in rows})),
                       value(sum(prices) / len(prices) if prices else None)))
    chosen = [b for b in bids if b[2] in ("A", "B")]
    cumulated = {}
    for bid in chosen:
        for w in cumulate(bid[0], 10 * minute, 30 * minute):
            cumulated.setdefault((w, bid[2]), []).append(bid)
    for ((s, e), item), rows in cumulated.items():
        prices = [p for _, p, _ in rows if p is not None]
        out.append(row("cumulate", item, text(s), text(e), str(sum(1 for p in prices if p > 10)),
                       value(prices[0] if prices else None), value(prices[-1] if prices else None)))
    for ((s, e), _), rows in groups(lambda t: tumble(t, 20 * minute), lambda b: None).items():
        items = [i for _, _, i in rows]
        out.append(row("listagg", text(s), "".join(items), ",".join(sorted(set(items)))))
    # The cascade: 5-minute counts per item, each timed at its window's end - 1 ms, then
    # summed per 15-minute window.
    five = groups(lambda t: tumble(t, 5 * minute), lambda b: b[2])
    fifteen = {}
    for ((s, e), item), rows in five.items():
        (w,) = tumble(e - 1, 15 * minute)
        fifteen.setdefault((w, item), []).append(len(rows))
    for ((s, e), item), counts in fifteen.items():
        out.append(row("cascade", item, text(s), text(e), str(sum(counts)), str(len(counts))))
    return out


def group_windows():
    # 13_group_windows.sql: TUMBLE 15 min per item (start, end, rowtime = end - 1 ms, SUM,
    # COUNT), and HOP slide 4 min size 10 min over the bids of items other than C (MAX):
    # windows start at multiples of the slide in (t - size, t].
    from datetime import datetime, timedelta

    minute = 60_000
    epoch = datetime(1970, 1, 1)

    def text(ms):
        shown = (epoch + timedelta(milliseconds=ms)).isoformat()
        return shown[:-3] if ms % 1000 else shown

    bids = []
    for line in (SQL / "data" / "bids_hour.json").read_text().splitlines():
        bid = json.loads(line)
        t = int((datetime.fromisoformat(bid["bidtime"]) - epoch).total_seconds() * 1000)
        bids.append((t, bid["price"], bid["item"]))
    out = []
    tumbling = {}
    for t, price, item in bids:
        s = t - t % (15 * minute)
        tumbling.setdefault((item, s), []).append(price)
    for (item, s), prices in tumbling.items():
        e = s + 15 * minute
        present = [p for p in prices if p is not None]
        out.append(row("tumble", item, text(s), text(e), text(e - 1),
                       double(sum(present)) if present else "null", str(len(prices))))
    hopping = {}
    slide, size = 4 * minute, 10 * minute
    for t, price, item in bids:
        if item == "C":
            continue
        for s in range(t - t % slide, t - size, -slide):
            hopping.setdefault(s, []).append(price)
    for s, prices in hopping.items():
        present = [p for p in prices if p is not None]
        out.append(row("hop", text(s), double(max(present)) if present else "null"))
    return out


def updating_group_by():
    # 14_updating_group_by.sql over ids 1..5000: the final table of each updating query
    # (the golden runner folds the printed changes into it).
    ids = range(1, 5001)
    out = []
    for k in range(7):
        group = [i for i in ids if i % 7 == k]
        out.append(row("per_key", str(k), str(len(group)), str(sum(group)), str(min(group)), str(max(group))))
    for k in range(3):
        n = sum(1 for i in ids if i <= 4000 and i % 3 == k)
        if n > 1333:
            out.append(row("busy", str(k), str(n)))
    out.append(row("global", str(len(ids)), str(sum(ids)), double(sum(ids) / len(ids))))
    for k in sorted({i % 4 for i in ids}):
        out.append(row("distinct", str(k)))
    # The histogram of the per-key counts over ids 1..1000, and totals over the counts.
    counts = {k: sum(1 for i in ids if i <= 1000 and i % 7 == k) for k in range(7)}
    for n in sorted(set(counts.values())):
        keys = [k for k, c in counts.items() if c == n]
        out.append(row("histogram", str(n), str(len(keys)), str(min(keys)), str(max(keys))))
    totals = [sum(1 for i in ids if i % 7 == k) for k in range(7)]
    out.append(row("totals", str(sum(totals)), double(sum(totals) / len(totals)), str(len(totals)),
                   str(min(totals)), str(max(totals))))
    return out


def union_all():
    # 16_union_all.sql: A and B bids, C bids at ten times their price (item 'C10'), and A
    # bids over 15 a second time; TUMBLE 30 min COUNT/SUM per item over the union.
    from datetime import datetime, timedelta

    epoch = datetime(1970, 1, 1)
    size = 30 * 60_000
    rows = []
    for line in (SQL / "data" / "bids_hour.json").read_text().splitlines():
        bid = json.loads(line)
        t = int((datetime.fromisoformat(bid["bidtime"]) - epoch).total_seconds() * 1000)
        price, item = bid["price"], bid["item"]
        if item in ("A", "B"):
            rows.append((t, price, item))
        if item == "C":
            rows.append((t, None if price is None else price * 10, "C10"))
        if item == "A" and price is not None and price > 15:
            rows.append((t, price, item))
    groups = {}
    for t, price, item in rows:
        groups.setdefault((t - t % size, item), []).append(price)
    out = []
    for (s, item), prices in groups.items():
        present = [p for p in prices if p is not None]
        shown = (epoch + timedelta(milliseconds=s)).isoformat()
        out.append(row("union", shown, item, str(len(prices)), double(sum(present)) if present else "null"))
    return out


def session_windows():
    # 17_session_windows.sql: per item, bids closer than the gap (or exactly the gap apart)
    # share a session [first, last + gap); gap 1 min (COUNT, SUM, MAX) and 90 s (COUNT).
    from datetime import datetime, timedelta

    epoch = datetime(1970, 1, 1)

    def text(ms):
        shown = (epoch + timedelta(milliseconds=ms)).isoformat()
        return shown[:-3] if ms % 1000 else shown

    per_item = {}
    for line in (SQL / "data" / "bids_hour.json").read_text().splitlines():
        bid = json.loads(line)
        t = int((datetime.fromisoformat(bid["bidtime"]) - epoch).total_seconds() * 1000)
        per_item.setdefault(bid["item"], []).append((t, bid["price"]))

    def sessions(gap):
        for item, bids in per_item.items():
            current = []
            for t, price in sorted(bids, key=lambda b: b[0]):
                if current and t > current[-1][0] + gap:
                    yield item, current
                    current = []
                current.append((t, price))
            yield item, current

    out = []
    for item, bids in sessions(60_000):
        prices = [p for _, p in bids if p is not None]
        out.append(row("tvf", item, text(bids[0][0]), text(bids[-1][0] + 60_000), str(len(bids)),
                       double(sum(prices)) if prices else "null", double(max(prices)) if prices else "null"))
    for item, bids in sessions(90_000):
        out.append(row("legacy", item, text(bids[0][0]), text(bids[-1][0] + 90_000), str(len(bids))))
    return out


def current_watermark():
    # 18_current_watermark.sql: no bid is behind the watermark, so each item keeps all its bids.
    counts = {}
    for line in (SQL / "data" / "bids_hour.json").read_text().splitlines():
        item = json.loads(line)["item"]
        counts[item] = counts.get(item, 0) + 1
    return [row("on_time", item, str(n)) for item, n in counts.items()]


def top_n():
    # 20_top_n.sql: ROW_NUMBER() over each partition sorted by the ORDER BY columns, NULL
    # the smallest value (as in Flink); the rank filter, then the filter on ranked rows.
    # Ties on the whole ORDER BY would make a query's rows ambiguous: they are refused here.
    minute = 60_000
    text = timestamp_text

    def value(x):
        return "null" if x is None else double(x)

    def desc(x):
        # Sorting key of a DOUBLE in DESC order with NULL the smallest (so last).
        return (1, 0) if x is None else (0, -x)

    def ranked(rows, key):
        rows = sorted(rows, key=key)
        keys = [key(r) for r in rows]
        assert len(set(keys)) == len(keys), "ties in a Top-N's ORDER BY"
        return list(enumerate(rows, start=1))

    bids = bids_hour()

    def partitions(key):
        out = {}
        for bid in bids:
            out.setdefault(key(bid), []).append(bid)
        return out

    out = []
    # top_items: revenue per (10-minute window, item), top 2 per window by revenue DESC, item.
    revenue = {}
    for t, price, item in bids:
        s = t - t % (10 * minute)
        revenue.setdefault((s, item), []).append(price)
    windows = {}
    for (s, item), prices in revenue.items():
        present = [p for p in prices if p is not None]
        windows.setdefault(s, []).append((item, sum(present) if present else None))
    for s, rows in windows.items():
        for rank, (item, total) in ranked(rows, lambda r: (desc(r[1]), r[0]))[:2]:
            out.append(row("top_items", text(s), text(s + 10 * minute), item, value(total), str(rank)))
    # top_bids: per 20-minute window, top 3 by price DESC, bidtime.
    for s, rows in partitions(lambda b: b[0] - b[0] % (20 * minute)).items():
        for rank, (t, price, item) in ranked(rows, lambda r: (desc(r[1]), r[0]))[:3]:
            out.append(row("top_bids", text(s), text(t), value(price), item))
    # window_first: per (15-minute window, item), the earliest bid.
    for (s, item), rows in partitions(lambda b: (b[0] - b[0] % (15 * minute), b[2])).items():
        t, price, _ = ranked(rows, lambda r: r[0])[0][1]
        out.append(row("window_first", text(s), item, text(t), value(price)))
    # leaders: bids per item, top 2 by count DESC, item.
    counts = [(item, len(rows)) for item, rows in partitions(lambda b: b[2]).items()]
    for rank, (item, n) in ranked(counts, lambda r: (-r[1], r[0]))[:2]:
        out.append(row("leaders", item, str(n), str(rank)))
    # first_bid / last_bid: per item, the earliest and the latest bid.
    for item, rows in partitions(lambda b: b[2]).items():
        t, price, _ = ranked(rows, lambda r: r[0])[0][1]
        out.append(row("first_bid", item, text(t), value(price)))
        t, price, _ = ranked(rows, lambda r: -r[0])[0][1]
        out.append(row("last_bid", item, text(t), value(price)))
    # runners_up: per item, ranks 2 and 3 by price DESC, bidtime; then item <> 'E'.
    for item, rows in partitions(lambda b: b[2]).items():
        for rank, (t, price, _) in ranked(rows, lambda r: (desc(r[1]), r[0]))[1:3]:
            if item != "E":
                out.append(row("runners_up", item, value(price), text(t), str(rank)))
    return out


def order_by_limit():
    # 21_order_by_limit.sql: item C's bids (all of them, sorted); the top 3 bids by price
    # DESC then bidtime (NULL the smallest); item A's bids ranked 3rd and 4th that way.
    bids = bids_hour()

    def value(x):
        return "null" if x is None else double(x)

    def by_price(b):
        return ((1, 0) if b[1] is None else (0, -b[1]), b[0])

    out = [row("sorted", timestamp_text(t), value(p)) for t, p, item in bids if item == "C"]
    for t, p, item in sorted(bids, key=by_price)[:3]:
        out.append(row("top3", timestamp_text(t), value(p), item))
    for t, p, _ in sorted((b for b in bids if b[2] == "A"), key=by_price)[2:4]:
        out.append(row("page", timestamp_text(t), value(p)))
    return out


def grouping_sets():
    # 22_grouping_sets.sql: each grouping set aggregated on its own, NULL for the columns
    # it leaves out. SUM over no non-null price is NULL; price > 10 is NULL for a NULL price.
    bids = bids_hour()
    minute = 60_000

    def total(prices):
        present = [p for p in prices if p is not None]
        return double(sum(present)) if present else "null"

    out = []
    windows = {}
    for t, p, item in bids:
        windows.setdefault(t - t % (20 * minute), []).append((p, item))
    for s, rows in windows.items():
        out.append(row("sets", timestamp_text(s), "null", total([p for p, _ in rows]), str(len(rows))))
        for item in sorted({i for _, i in rows}):
            prices = [p for p, i in rows if i == item]
            out.append(row("sets", timestamp_text(s), item, total(prices), str(len(prices))))
    halves = {}
    for t, p, item in bids:
        if item in ("A", "B"):
            halves.setdefault(t - t % (30 * minute), []).append(item)
    for s, items in halves.items():
        out.append(row("rollup", timestamp_text(s), "null", str(len(items))))
        for item in sorted(set(items)):
            out.append(row("rollup", timestamp_text(s), item, str(items.count(item))))

    def high(p):
        return "null" if p is None else ("true" if p > 10 else "false")

    chosen = [(item, high(p)) for _, p, item in bids if item in ("C", "D")]
    # A set that groups by price > 10 makes its own NULL group for NULL prices, which
    # the leave-out rows of the other sets share in text: count per set, not per text.
    counted = {}
    for item, h in chosen:
        counted[("both", item, h)] = counted.get(("both", item, h), 0) + 1
        counted[("item", item, "null")] = counted.get(("item", item, "null"), 0) + 1
        counted[("high", "null", h)] = counted.get(("high", "null", h), 0) + 1
        counted[("none", "null", "null")] = counted.get(("none", "null", "null"), 0) + 1
    for (_, item, h), n in counted.items():
        out.append(row("cube", item, h, str(n)))
    return out


def late_rows():
    # 23_late_rows.sql: the source reads data/clicks_late.json in batches of at most 1,024
    # rows and the watermark (max ts - 5 s) advances after each batch, so a row is late when
    # its time is at or behind the watermark of the batches before its own. The planted
    # late rows are late for any smaller batch too (they trail by 16 minutes). A window
    # drops a late row when its window has fired (its end - 1 ms is at or behind the
    # watermark); each window is counted from the rows it kept.
    from datetime import datetime

    epoch = datetime(1970, 1, 1)
    clicks = []
    for line in (SQL / "data" / "clicks_late.json").read_text().splitlines():
        c = json.loads(line)
        clicks.append((c["id"], int((datetime.fromisoformat(c["ts"]) - epoch).total_seconds() * 1000), c["n"]))
    size = 10 * 60_000
    watermark = None
    late, windows = [], {}
    for start in range(0, len(clicks), 1024):
        batch = clicks[start:start + 1024]
        for i, t, n in batch:
            if watermark is not None and t <= watermark:
                late.append((i, t))
            s = t - t % size
            if watermark is None or s + size - 1 > watermark:
                windows.setdefault(s, []).append(n)
        watermark = max([t for _, t, _ in batch] + ([watermark] if watermark is not None else [])) - 5000
    out = [row("window", timestamp_text(s), timestamp_text(s + size), str(len(ns)), str(sum(ns)))
           for s, ns in windows.items()]
    out += [row("late", str(i), timestamp_text(t)) for i, t in late]
    out.append(row("late_count", str(len(late))))
    return out


def joins():
    # 24_joins.sql: a nested-loop join in Python, NULL keys matching nothing; outer joins
    # add each unmatched row padded with NULLs; a self-join of customer c8's orders.
    customers = [json.loads(line) for line in (SQL / "data" / "customers.json").read_text().splitlines() if line]
    all_orders = orders()

    def text(v):
        if v is None:
            return "null"
        return double(v) if isinstance(v, float) else str(v)

    def match(o, c):
        return o["customer"] is not None and o["customer"] == c["id"]

    out = []
    for o in all_orders:
        for c in customers:
            if match(o, c) and o["amount"] > 100:
                out.append(row("inner", text(o["order_id"]), text(c["name"]), text(c["tier"])))
    for o in all_orders:
        if o["category"] != "books":
            continue
        found = [c for c in customers if match(o, c)]
        for c in found or [None]:
            out.append(row("left", text(o["order_id"]), text(o["customer"]), text(c and c["name"])))
    big = [o for o in all_orders if o["quantity"] >= 4]
    for o in big:
        found = [c for c in customers if match(o, c)]
        for c in found or [None]:
            out.append(row("full", text(o["order_id"]), text(c and c["id"]), text(c and c["name"])))
    for c in customers:
        if not any(match(o, c) for o in big):
            out.append(row("full", "null", text(c["id"]), text(c["name"])))
    for c in customers:
        found = [o for o in all_orders if match(o, c) and o["amount"] * o["quantity"] > 400]
        for o in found or [None]:
            out.append(row("residual", text(o and o["order_id"]), text(c["name"])))
    for a in all_orders:
        for b in all_orders:
            if a["customer"] == b["customer"] == "c8" and a["order_id"] < b["order_id"]:
                out.append(row("self", str(a["order_id"]), str(b["order_id"]), a["category"], b["category"]))
    per = {}
    for o in all_orders:
        n, spent = per.get(o["customer"], (0, 0.0))
        per[o["customer"]] = (n + 1, spent + o["amount"])
    for customer, (n, spent) in per.items():
        for c in customers:
            if c["id"] == customer:
                out.append(row("totals", text(c["id"]), text(c["tier"]), str(n), double(spent)))
    return out


def interval_join():
    # 26_interval_join.sql: pairs of bids of one item with b 1 ms to 40 s after a.
    bids = bids_hour()

    def value(x):
        return "null" if x is None else double(x)

    out = []
    for ta, pa, ia in bids:
        for tb, pb, ib in bids:
            if ia == ib and tb - 40_000 <= ta <= tb - 1:
                out.append(row("close", ia, timestamp_text(ta), timestamp_text(tb), value(pa), value(pb)))
    return out


def window_join():
    # 27_window_join.sql: joins of per-window results and of windowed rows, by window and key.
    bids = bids_hour()
    minute = 60_000
    out = []
    counts, tops = {}, {}
    for t, p, item in bids:
        w = t - t % (10 * minute)
        counts[(w, item)] = counts.get((w, item), 0) + 1
        if p is not None and p > 15:
            tops[(w, item)] = max(tops.get((w, item), p), p)
    for (w, item), n in counts.items():
        if (w, item) in tops:
            out.append(row("aggregates", timestamp_text(w), item, str(n), double(tops[(w, item)])))
    for ta, pa, ia in bids:
        for te, pe, ie in bids:
            if ia == "A" and ie == "E" and pa is not None and pa == pe and \
                    ta - ta % (5 * minute) == te - te % (5 * minute):
                out.append(row("rows", timestamp_text(ta - ta % (5 * minute)), timestamp_text(ta),
                               timestamp_text(te), double(pa)))
    return out


CHECKS = {
    "02_json_file_projection_filter": json_file_projection_filter,
    "04_group_by_aggregates": group_by_aggregates,
    "11_window_tvfs": window_tvfs,
    "12_window_aggregates": window_aggregates,
    "13_group_windows": group_windows,
    "14_updating_group_by": updating_group_by,
    "16_union_all": union_all,
    "17_session_windows": session_windows,
    "18_current_watermark": current_watermark,
    "20_top_n": top_n,
    "21_order_by_limit": order_by_limit,
    "22_grouping_sets": grouping_sets,
    "23_late_rows": late_rows,
    "24_joins": joins,
    "26_interval_join": interval_join,
    "27_window_join": window_join,
}


def main():
    passed = failed = 0
    for name, expected_rows in CHECKS.items():
        golden = sorted(line for line in (SQL / f"{name}.out").read_text().splitlines() if line.startswith("+I["))
        expected = sorted(expected_rows())
        if golden == expected:
            passed += 1
            print(f"ok: {name}.out matches the independent computation ({len(expected)} rows)")
        else:
            failed += 1
            print(f"MISMATCH: {name}.out")
            for line in sorted(set(golden) - set(expected)):
                print(f"  only in the golden file: {line}")
            for line in sorted(set(expected) - set(golden)):
                print(f"  only in the computation: {line}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
