"""The partial stage's C fast path (collectors/_scan.c, collectors/scanned.py) against the general path.

The contract: **the fast path may decline anything, but whatever it accepts gives exactly what the
general path (``monitor.record.decode_record``, orjson, then ``collectors.columns``) gives.**

1. Header: when ``scan_record(raw)`` is not None, ``decode_record(raw)`` succeeds and gives the same
   model_name, model_version, event_time_ms, request_id, rows, part and parts (schema_version 2).
2. Values: when it is not None and ``Pending.commit`` returns True, the taken numeric columns are bit for
   bit ``np.array(col, dtype=float64)`` of the decoded column (None -> NaN, absent -> all NaN); the
   categorical tallies are ``Counter`` of the decoded values but None and "" (which are the missing
   ones); ``check_columns`` drops no row of that record; the same for the outputs.
3. When commit returns False, the Pending is unchanged.
4. An OpenPartial fed through the fast path (declined records the general way) closes to the same
   profile bytes, counts and sample as one fed through the general path only.

The extension is imported directly: these tests fail, never skip, when it is not built.
"""

from __future__ import annotations

import collections
import datetime
import math
import random
import struct
import sys
import tracemalloc
from decimal import Context, Decimal
from types import MappingProxyType

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from collectors import _scan  # the extension itself: an ImportError fails the module, never skips it
from collectors import partials as partials_module
from collectors.columns import MAX_CATEGORY_CHARS, check_columns, output_arrays
from collectors.partials import OpenPartial
from collectors.scanned import SCANNER, new_pending, scan_record
from monitor.errors import RecordError
from monitor.keys import ALL_TRAFFIC, WindowKey
from monitor.record import MAX_COLUMNS, MAX_PARTS, LoggedRecord, decode_record
from monitor.schema import FeatureSpec

T0 = "2012-01-02T00:00:00.000Z"
T0_MS = 1325462400000
NAN_BYTES = struct.pack("<d", float("nan"))
NO_ATTRIBUTES = MappingProxyType({})

NUM = FeatureSpec(name="x", kind="numeric", dtype="float")
CAT = FeatureSpec(name="x", kind="categorical", dtype="string")
PRED = FeatureSpec(name="prediction", kind="numeric", dtype="float")
LABEL = FeatureSpec(name="label", kind="categorical", dtype="string")
BIKE_SPECS = (
    FeatureSpec(name="temp", kind="numeric", dtype="float"),
    FeatureSpec(name="hum", kind="numeric", dtype="float"),
    FeatureSpec(name="season", kind="categorical", dtype="string"),
    FeatureSpec(name="weathersit", kind="categorical", dtype="string"),
)
BIKE_OUTPUTS = (PRED, LABEL)


# -- records ------------------------------------------------------------------------------------

def doc(columns: dict, outputs: dict | None = None, *, rows: int | None = None, **fields) -> dict:
    """A version-2 record document as serving writes it."""
    d = {"schema_version": 2, "model_name": "bikeshare", "model_version": "v1", "event_time": T0,
         "request_id": "r1", "part": 0, "parts": 1}
    d["rows"] = rows if rows is not None else (len(next(iter(columns.values()))) if columns else 0)
    d["columns"] = columns
    if outputs is not None:
        d["outputs"] = outputs
    d.update(fields)
    return d


def record(columns: dict, outputs: dict | None = None, **kw) -> bytes:
    return orjson.dumps(doc(columns, outputs, **kw))


def hand(columns: bytes, rows: int, outputs: bytes | None = None, extra: bytes = b"") -> bytes:
    """A record written by hand around raw JSON text (for what orjson does not produce)."""
    out = b"" if outputs is None else b',"outputs":' + outputs
    return (b'{"schema_version":2,"model_name":"bikeshare","model_version":"v1","event_time":"' + T0.encode()
            + b'","request_id":"r1","part":0,"parts":1,"rows":' + str(rows).encode() + b',"columns":' + columns
            + out + extra + b"}")


def num_record(*texts: bytes) -> bytes:
    """One numeric column "x" holding the given number literals, and a null."""
    return hand(b'{"x":[' + b",".join(texts) + b',null]}', len(texts) + 1)


# -- the differential checks --------------------------------------------------------------------

HEADER_FIELDS = ("model_name", "model_version", "event_time_ms", "request_id", "rows", "part", "parts")


def general(raw):
    try:
        return decode_record(raw)
    except RecordError:
        return None


def check_header(raw):
    """Rule 1: the decoded record when the fast path accepts ``raw``, else None."""
    scanned_head = scan_record(raw)
    if scanned_head is None:
        return None
    try:
        decoded = decode_record(raw)
    except RecordError as exc:
        pytest.fail(f"fast path accepted a record the general path refuses ({exc.reason}: {exc}): {raw[:300]!r}")
    assert decoded.schema_version == 2, raw[:300]
    assert type(scanned_head) is LoggedRecord
    assert scanned_head.columns is None and scanned_head.outputs is None
    for f in HEADER_FIELDS:
        assert getattr(scanned_head, f) == getattr(decoded, f), (f, raw[:300])
        assert type(getattr(scanned_head, f)) is type(getattr(decoded, f)), (f, raw[:300])
    assert dict(scanned_head.attributes) == dict(decoded.attributes) == {}
    return decoded


def baseline(specs, out_specs) -> bytes:
    """A record that every layout takes: a value and a missing one for each feature."""
    def block(ss):
        return {s.name: ([1.5, None] if s.kind == "numeric" else ["base", ""]) for s in ss}
    return record(block(specs) or {"unrelated": [0, 0]}, block(out_specs), rows=2)


def _numeric_bytes(col, rows: int) -> bytes:
    if col is None:
        return NAN_BYTES * rows
    return np.array(col, dtype=np.float64).tobytes()


def _tally(col, rows: int):
    if col is None:
        return ({}, rows)
    counts = collections.Counter(v for v in col if v is not None and v != "")
    return (dict(counts), rows - sum(counts.values()))


def expected_values(decoded, specs, out_specs):
    """What the general path makes of a decoded record, in ``Pending.take`` form (rule 2)."""
    rows = decoded.rows
    checked = check_columns(decoded.columns, rows, specs)
    assert checked.invalid == 0 and checked.keep is None, \
        f"fast path took a record the general path drops rows of: {checked.errors}"
    ins = []
    for s in specs:
        col = decoded.columns.get(s.name)
        if s.kind == "numeric":
            want = _numeric_bytes(col, rows)
            if col is not None:
                assert checked.columns[s.name].tobytes() == want
            ins.append(want)
        else:
            want = _tally(col, rows)
            if col is not None and hasattr(checked.columns[s.name], "counts"):
                assert dict(checked.columns[s.name].counts) == want[0]
            ins.append(want)
    arrays = output_arrays(decoded.outputs, out_specs, None)
    outs = []
    for s in out_specs:
        col = decoded.outputs.get(s.name)
        if s.kind == "numeric":
            want = _numeric_bytes(col, rows)
            if col is not None:
                assert arrays[s.name].tobytes() == want
            outs.append(want)
        else:
            outs.append(_tally(col, rows))
    return rows, ins, outs


def _joined(a, b):
    if isinstance(a, bytes):
        return a + b
    counts = dict(a[0])
    for k, c in b[0].items():
        counts[k] = counts.get(k, 0) + c
    return (counts, a[1] + b[1])


def _describe(got, want) -> str:
    lines = []
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            if isinstance(g, bytes):
                lines.append(f"feature {i}: fast {np.frombuffer(g).tolist()} general {np.frombuffer(w).tolist()}")
            else:
                lines.append(f"feature {i}: fast {g} general {w}")
    return "; ".join(lines)


def check_values(raw, specs=(NUM,), out_specs=()):
    """Rules 1-3 for one layout: 'scan' (declined by scan_record), 'commit' (declined at commit) or 'taken'."""
    decoded = check_header(raw)
    pending, twin = new_pending(specs, out_specs), new_pending(specs, out_specs)
    base = baseline(specs, out_specs)
    assert pending.commit(SCANNER, base) is True and twin.commit(SCANNER, base) is True
    ok = pending.commit(SCANNER, raw)
    assert ok in (True, False)
    got, before = pending.take(), twin.take()
    if decoded is None:
        return "scan"
    if not ok:
        assert got == before, f"a declined commit changed the pending rows: {raw[:300]!r}"
        return "commit"
    want_rows, want_ins, want_outs = expected_values(decoded, specs, out_specs)
    want = (before[0] + want_rows, [_joined(a, b) for a, b in zip(before[1], want_ins)],
            [_joined(a, b) for a, b in zip(before[2], want_outs)])
    assert got[0] == want[0]
    assert got[1] == want[1], f"inputs differ for {raw[:300]!r}: {_describe(got[1], want[1])}"
    assert got[2] == want[2], f"outputs differ for {raw[:300]!r}: {_describe(got[2], want[2])}"
    assert pending.rows == 0
    return "taken"


def check_all_layouts(raw, names=("x",), out_names=("prediction",)):
    """check_values with every numeric/categorical reading of the named columns; the set of outcomes."""
    outcomes = set()
    for kind_in in ("numeric", "categorical"):
        for kind_out in ("numeric", "categorical"):
            specs = tuple(FeatureSpec(name=n, kind=kind_in, dtype="float" if kind_in == "numeric" else "string")
                          for n in names)
            outs = tuple(FeatureSpec(name=n, kind=kind_out, dtype="float" if kind_out == "numeric" else "string")
                         for n in out_names)
            outcomes.add(check_values(raw, specs, outs))
    return outcomes


def check_number_texts(texts):
    """Each literal alone in a numeric column (rule 2), plus all of them in one record; returns taken ones."""
    taken = []
    for t in texts:
        raw = num_record(t)
        if check_values(raw, (NUM,)) == "taken":
            taken.append(t)
            # a number is never a category
            assert check_values(raw, (CAT,)) == "commit"
    if texts:
        check_values(num_record(*texts), (NUM,))
    return taken


# -- sanity: the differential tests are not vacuous ------------------------------------------------

def test_extension_is_built_and_wired():
    assert SCANNER is not None and isinstance(SCANNER, _scan.Scanner)
    assert new_pending((NUM,), ()) is not None


@pytest.mark.parametrize("raw", [
    record({"x": [1.5, None, 3]}, {"prediction": [1.0, 2.0, 3.0]}),
    record({"x": [1.5]}),
    record({"x": [1.5]}, {}),
    record({"x": [1.5]}, attributes=None),
    orjson.dumps(doc({"x": [1.5, -2.25e-7]}, {"prediction": [0.0, -0.0]}), option=orjson.OPT_INDENT_2),
    orjson.dumps(dict(reversed(list(doc({"x": [1.5]}).items())))),
    record({"x": [1.5]}, unknown={"nested": [1, [2, {"a": None}]], "t": True, "f": False}),
    b" \t\r\n" + record({"x": [1.5]}) + b" \n\t\r",
])
def test_plain_records_take_the_fast_path(raw):
    assert scan_record(raw) is not None
    assert check_values(raw, (NUM,), (PRED,)) == "taken"


def test_bikeshare_like_record_is_taken_with_exact_values():
    raw = record({"temp": [0.24, 0.22, None], "hum": [0.81, 80, 0.75], "season": ["spring", "", None],
                  "weathersit": ["clear", "clear", "mist"], "extra": [[1], {"a": 2}, True]},
                 {"prediction": [16.0, 40.25, 32.5], "label": ["lo", "hi", None]})
    assert check_values(raw, BIKE_SPECS, BIKE_OUTPUTS) == "taken"
    p = new_pending(BIKE_SPECS, BIKE_OUTPUTS)
    assert p.commit(SCANNER, raw) is True
    rows, ins, outs = p.take()
    assert rows == 3
    assert np.frombuffer(ins[0]).tolist()[:2] == [0.24, 0.22] and math.isnan(np.frombuffer(ins[0])[2])
    assert ins[2] == ({"spring": 1}, 2)
    assert ins[3] == ({"clear": 2, "mist": 1}, 0)
    assert outs[1] == ({"lo": 1, "hi": 1}, 1)
    assert p.take() == (0, [b"", b"", ({}, 0), ({}, 0)], [b"", ({}, 0)])


# -- floats ---------------------------------------------------------------------------------------

def _formats(x: float) -> list[bytes]:
    return [orjson.dumps(x), repr(x).encode(), f"{x:.17g}".encode(), f"{x:e}".encode(), f"{x:.16e}".encode(),
            f"{x:.19e}".encode(), f"{x:.20g}".encode(), f"{x:.25g}".encode(), f"{x:.15g}".encode(),
            f"{x:.6f}".encode(), f"{x:.30f}".encode()[:63], f"{x:E}".encode()]


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=8))
@example([0.1, 0.2, 0.3, 1 / 3, 2 / 3, 1e22, 1e23, 9007199254740993.0, 2.2250738585072014e-308,
          1.7976931348623157e308, 5e-324, -0.0, 0.0])
def test_floats_in_any_format_read_exactly_as_orjson(xs):
    texts = [t for x in xs for t in _formats(x)]
    check_number_texts(texts)


@settings(deadline=None, max_examples=120, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 2**64 - 1), st.integers(-30, 30), st.integers(0, 25), st.booleans())
def test_decimal_literals_near_the_fast_path_limits_read_exactly_as_orjson(mant, exp, point, neg):
    """Mantissas of up to 20 digits around 2**53, exponents around +-22: Clinger's fast path and its edges."""
    digits = str(mant)
    if point and point < len(digits):
        body = digits[:-point] + "." + digits[-point:]
    elif point:
        body = "0." + "0" * (point - len(digits)) + digits
    else:
        body = digits
    sign = "-" if neg else ""
    texts = [f"{sign}{body}e{exp}".encode(), f"{sign}{body}E{exp:+d}".encode(), f"{sign}{digits}e{exp}".encode()]
    if "." in body:
        texts.append(f"{sign}{body}".encode())
    check_number_texts(texts)


def _midpoint_texts(x: float) -> list[bytes]:
    """The exact halfway point between x and the next double up, and 17..20-digit roundings of it."""
    up = math.nextafter(x, math.inf)
    exact = Context(prec=2000)
    mid = exact.divide(exact.add(Decimal(x), Decimal(up)), 2)
    out = []
    for prec in (16, 17, 18, 19, 20, 25, 40):
        for rounding in ("ROUND_HALF_EVEN", "ROUND_UP", "ROUND_DOWN"):
            out.append(f"{Context(prec=prec, rounding=rounding).plus(mid):e}".encode())
    return out


@settings(deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(st.floats(min_value=1e-300, max_value=1e300, allow_nan=False, allow_infinity=False))
@example(9007199254740992.0)
@example(1.0)
@example(1e22)
@example(8.98846567431158e307)
def test_halfway_cases_are_rounded_like_orjson(x):
    check_number_texts(_midpoint_texts(x))


SPECIAL_FLOATS = [
    b"1E5", b"1e5", b"1e-5", b"-0.0", b"0.000", b"-0.000", b"1.0e+22", b"1e22", b"1e23", b"-1e23",
    b"123456789012345678901e-5", b"5e-324", b"2.2250738585072014e-308", b"2.2250738585072011e-308",
    b"2.225073858507201e-308", b"1e-400", b"1e400", b"-1e400", b"1.7976931348623157e308",
    b"1.7976931348623158e308", b"1.7976931348623159e308", b"4.9e-324", b"2.4703282292062327e-324",
    b"0." + b"1" * 40, b"0." + b"1" * 61, b"0." + b"1" * 62, b"0." + b"1" * 70, b"0." + b"0" * 300 + b"1",
    b"0." + b"0" * 1000, b"-0." + b"0" * 1000 + b"e-99999", b"0e99999", b"0e-99999", b"-0e5",
    b"9007199254740993", b"9007199254740993.0", b"9007199254740993e0", b"9007199254740992.5",
    b"9007199254740993e-5", b"900719925474099.3e1", b"18014398509481985.0", b"1234567890123456789.0",
    b"12345678901234567890.0", b"1234567890123456789e-22", b"1234567890123456789e22", b"123456789012345678e-22",
    b"9999999999999999999e-3", b"9999999999999999999e-23", b"1e-22", b"1e-23", b"1e+022",
    b"1e" + b"0" * 100 + b"5", b"1e-" + b"0" * 100 + b"5", b"3.141592653589793238462643383279",
    b"2.718281828459045235360287471352662497757", b"0.30000000000000004", b"0.3000000000000000444089209850062616169452667236328125",
    b"1" + b"0" * 22 + b".0", b"1" + b"0" * 23 + b".0", b"7.2057594037927933e16", b"0.1e1", b"100e-2",
    b"1.00000000000000011102230246251565404236316680908203125", b"1.00000000000000011102230246251565404236316680908203124",
    b"1.00000000000000011102230246251565404236316680908203126", b"1.0000000000000001110223024625156540",
    b"8.988465674311579e307", b"1e308", b"1e-307", b"2e-308", b"3e-308", b"1e-308",
    b"17976931348623157" + b"0" * 292 + b".0",
]


def test_special_float_literals_read_exactly_as_orjson():
    taken = check_number_texts(SPECIAL_FLOATS)
    # the common ones do take the fast path (the differential checks above are not vacuous)
    for t in (b"1E5", b"1e-5", b"-0.0", b"0.000", b"1.0e+22", b"1e23", b"0.1e1", b"0." + b"1" * 40):
        assert t in taken, t
    # overflow and subnormals/underflow are declined (orjson refuses infinity)
    for t in (b"1e400", b"-1e400", b"5e-324", b"1e-400", b"4.9e-324"):
        assert t not in taken, t


def test_negative_zero_keeps_its_sign_bit():
    raw = num_record(b"-0.0", b"0.0", b"-0", b"-0e0", b"0")
    assert check_values(raw, (NUM,)) == "taken"
    p = new_pending((NUM,), ())
    assert p.commit(SCANNER, raw)
    got = np.frombuffer(p.take()[1][0])
    assert [math.copysign(1, v) for v in got[:5]] == [-1, 1, 1, -1, 1]


def test_random_decimal_strings_bulk():
    """10,000 seeded decimal literals of every shape (digits 1..40, exponents -330..330)."""
    rng = random.Random(20261202)
    texts = []
    for _ in range(10_000):
        n = rng.choice([1, 2, 5, 15, 16, 17, 18, 19, 20, 21, 25, 40])
        digits = "".join(rng.choice("0123456789") for _ in range(n)).lstrip("0") or "0"
        point = rng.randint(0, len(digits))
        body = digits if point == 0 else (digits[:-point] or "0") + "." + digits[-point:]
        exp = rng.choice(["", f"e{rng.randint(-25, 25)}", f"E{rng.randint(-330, 330):+d}", f"e{rng.randint(-310, 310)}"])
        if body.isdigit() and not exp and len(body) > 1 and body[0] == "0":
            continue
        texts.append(((rng.random() < 0.3) * "-" + body + exp).encode())
    bad = []
    for t in texts:
        raw = num_record(t)
        if scan_record(raw) is None:
            continue
        p = new_pending((NUM,), ())
        if not p.commit(SCANNER, raw):
            continue
        fast = p.take()[1][0][:8]
        want = np.array(decode_record(raw).columns["x"][:1], dtype=np.float64).tobytes()
        if fast != want:
            bad.append((t, struct.unpack("<d", fast)[0], struct.unpack("<d", want)[0], float(t)))
    assert not bad, bad[:10]


# -- integers ---------------------------------------------------------------------------------------

INTEGERS = [b"0", b"-0", b"1", b"-1", b"7", b"123456789012345678", b"-123456789012345678", b"999999999999999999",
            b"-999999999999999999", b"1000000000000000000", b"9223372036854775807", b"-9223372036854775808",
            b"9223372036854775808", b"18446744073709551615", b"18446744073709551616", b"99999999999999999999999",
            str(2**53 + 1).encode(), str(-(2**53 + 1)).encode(), str(2**53 + 3).encode(), str(2**54 + 1).encode(),
            str(2**60 + 1).encode(), b"288230376151711745", b"-288230376151711745", b"1" + b"0" * 300]


def test_integers_in_numeric_columns_read_like_numpy_of_orjson_ints():
    taken = check_number_texts(INTEGERS)
    for t in (b"0", b"-0", b"1", b"123456789012345678", b"-999999999999999999", str(2**53 + 1).encode()):
        assert t in taken, t


@settings(deadline=None, max_examples=100)
@given(st.lists(st.one_of(st.integers(-10**18 + 1, 10**18 - 1), st.integers(-2**63, 2**64 - 1)), min_size=1,
                max_size=10), st.integers(-10**30, 10**30))
def test_random_integers_in_numeric_columns(ints, big):
    check_number_texts([str(i).encode() for i in ints] + [str(big).encode()])
    check_values(record({"x": ints}), (NUM,))


def test_ints_and_floats_mixed_with_nulls():
    raw = record({"x": [1, None, 2.5, -3, None, 10**17]}, {"prediction": [None, 1, 2, 3.5, -0.0, 0]})
    assert check_values(raw, (NUM,), (PRED,)) == "taken"


# -- strings --------------------------------------------------------------------------------------

def cat_record(*values: bytes) -> bytes:
    """A categorical column "x" of the given raw JSON string literals (and a null and an empty string)."""
    return hand(b'{"x":[' + b",".join(values) + b',null,""]}', len(values) + 2)


@pytest.mark.parametrize("text", ["a", "spring", "é", "中文", "😀", "a b", "\x7f", "naïve café", "\u2028", "\ufffe",
                                  "\U0010ffff", "\u0800", "\u07ff", "\ud7ff", "\ue000", "0", "null", "true"])
def test_valid_utf8_categories_are_counted_like_the_general_path(text):
    raw = cat_record(b'"' + text.encode() + b'"', b'"' + text.encode() + b'"', b'"other"')
    assert check_values(raw, (CAT,)) == "taken"
    p = new_pending((CAT,), ())
    assert p.commit(SCANNER, raw)
    assert p.take()[1][0] == ({text: 2, "other": 1}, 2)


INVALID_UTF8 = [b"\xc0\x80", b"\xc1\xbf", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf5\x80\x80\x80", b"\xff", b"\xfe",
                b"\x80", b"\xbf", b"\xe4\xb8", b"\xe4", b"\xf0\x9f\x98", b"\xf0\x9f", b"\xf0", b"\xe0\x80\x80",
                b"\xe0\x9f\xbf", b"\xf0\x80\x80\x80", b"\xf0\x8f\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80",
                b"\xc3", b"\xc3\x28", b"\xe2\x28\xa1", b"\xe2\x82\x28", b"\xf0\x28\x8c\xbc", b"a\xc3", b"\xc3\xa9\xa9"]


@pytest.mark.parametrize("bad", INVALID_UTF8)
@pytest.mark.parametrize("where", ["category", "name", "column_name", "unknown_value", "unknown_key", "nested"])
def test_invalid_utf8_anywhere_is_declined(bad, where):
    if where == "category":
        raw = cat_record(b'"' + bad + b'"')
    elif where == "name":
        raw = hand(b'{"x":[1]}', 1).replace(b'"bikeshare"', b'"bike' + bad + b'"')
    elif where == "column_name":
        raw = hand(b'{"x":[1],"y' + bad + b'":[2]}', 1)
    elif where == "unknown_value":
        raw = hand(b'{"x":[1]}', 1, extra=b',"zz":"' + bad + b'"')
    elif where == "unknown_key":
        raw = hand(b'{"x":[1]}', 1, extra=b',"z' + bad + b'":1')
    else:
        raw = hand(b'{"x":[1],"y":[["' + bad + b'"]]}', 1)
    assert scan_record(raw) is None
    with pytest.raises(RecordError) as info:
        decode_record(raw)
    assert info.value.reason in ("not_utf8", "not_json")
    assert new_pending((CAT,), ()).commit(SCANNER, raw) is False


def test_every_two_byte_sequence_matches_pythons_utf8_decoder():
    """Exhaustive over two bytes, sampled over three and four: accepted only when Python decodes them."""
    rng = random.Random(7)
    seqs = [bytes([a, b]) for a in range(0x80, 0x100) for b in range(0x20, 0x100) if b not in (0x22, 0x5C)]
    seqs += [bytes([a, rng.randrange(0x80, 0xC0), rng.choice([rng.randrange(0x80, 0xC0), rng.randrange(0x20, 0x100)])])
             for a in range(0xE0, 0x100) for _ in range(40)]
    seqs += [bytes([a, b, rng.randrange(0x80, 0xC0), rng.randrange(0x80, 0xC0)])
             for a in range(0xF0, 0x100) for b in range(0x80, 0xC0)]
    seqs = [s for s in seqs if 0x22 not in s and 0x5C not in s]
    for s in seqs:
        raw = cat_record(b'"' + s + b'"')
        try:
            s.decode("utf-8")
            valid = True
        except UnicodeDecodeError:
            valid = False
        head = scan_record(raw)
        if not valid:
            assert head is None, s
        elif head is not None:
            p = new_pending((CAT,), ())
            assert p.commit(SCANNER, raw) is True
            assert p.take()[1][0] == ({s.decode(): 1}, 2), s


@pytest.mark.parametrize("literal", [b'"a\\"b"', b'"a\\\\b"', b'"a\\nb"', b'"\\u00e9"', b'"\\ud83d\\ude00"', b'"\\/"',
                                     b'"\\t"', b'"\\u0000"'])
def test_escaped_strings_are_declined_and_read_by_the_general_path(literal):
    raw = cat_record(literal)
    assert scan_record(raw) is None
    assert decode_record(raw).columns["x"][0] == orjson.loads(literal)
    # an escape anywhere, even in a column no feature reads
    raw2 = hand(b'{"x":["a"],"y":[' + literal + b"]}", 1)
    assert check_values(raw2, (CAT,)) in ("scan", "taken")


@pytest.mark.parametrize("ctrl", [b"\x00", b"\x01", b"\x09", b"\x0a", b"\x0d", b"\x1f"])
def test_raw_control_characters_in_strings_are_declined(ctrl):
    raw = cat_record(b'"a' + ctrl + b'b"')
    assert scan_record(raw) is None
    with pytest.raises(RecordError):
        decode_record(raw)


@pytest.mark.parametrize("value,taken", [("a" * 256, True), ("a" * 257, False), ("é" * 128, True),
                                         ("é" * 129, False), ("中" * 85 + "a", True), ("中" * 86, False),
                                         ("😀" * 64, True), ("😀" * 65, False), ("x" * 10_000, False)])
def test_category_length_limit(value, taken):
    raw = record({"x": [value, "b", value, None, ""]})
    outcome = check_values(raw, (CAT,))
    assert outcome == ("taken" if taken else "commit")
    if not taken and len(value) > MAX_CATEGORY_CHARS:
        # the general path clips it: the fast path must not count the raw value
        col = check_columns(decode_record(raw).columns, 5, (CAT,)).columns["x"]
        assert value not in (col.counts if hasattr(col, "counts") else list(col))


def test_empty_string_and_null_count_as_missing():
    raw = record({"x": ["", None, "", "a"]}, {"label": [None, "", "b", "b"]})
    assert check_values(raw, (CAT,), (LABEL,)) == "taken"
    p = new_pending((CAT,), (LABEL,))
    assert p.commit(SCANNER, raw)
    assert p.take() == (4, [({"a": 1}, 3)], [({"b": 2}, 2)])


def test_non_ascii_feature_names_match_by_bytes():
    specs = (FeatureSpec(name="température", kind="numeric", dtype="float"),
             FeatureSpec(name="季節", kind="categorical", dtype="string"))
    raw = record({"température": [1.25, None], "季節": ["春", "夏"], "temperature": [9.0, 9.0]})
    assert check_values(raw, specs) == "taken"


# -- structure ------------------------------------------------------------------------------------

GOOD = record({"x": [1.5, None], "y": ["a", "b"]}, {"prediction": [1.0, 2.0]})

STRUCTURE_CASES = {
    "plain": GOOD,
    "pretty": orjson.dumps(orjson.loads(GOOD), option=orjson.OPT_INDENT_2),
    "whitespace_everywhere": b' { "schema_version" : 2 ,\t"model_name"\n:\r"bikeshare" , "model_version" : "v1" , '
                             b'"event_time" : "' + T0.encode() + b'" , "request_id" : "r1" , "rows" : 2 , '
                             b'"columns" : { "x" : [ 1.5 , null ] , "y" : [ "a" , "b" ] } , '
                             b'"outputs" : { "prediction" : [ 1.0 , 2.0 ] } } ',
    "keys_reversed": orjson.dumps(dict(reversed(list(orjson.loads(GOOD).items())))),
    "unknown_nested": record({"x": [1.5]}, extra={"a": [1, {"b": [None, True, False, "s", -1.5e-3, {}]}], "c": []}),
    "unknown_before_header": b'{"zzz":{"a":[1,2,{"b":null}]},' + GOOD[1:],
    "unknown_deep_100": record({"x": [1.5]}, deep=orjson.loads("[" * 100 + "]" * 100)),
    "unknown_deep_60": record({"x": [1.5]}, deep=orjson.loads("[" * 60 + "]" * 60)),
    "column_deep_100": hand(b'{"x":[1.5],"y":[' + b"[" * 100 + b"]" * 100 + b"]}", 1),
    "column_deep_63": hand(b'{"x":[1.5],"y":[' + b"[" * 63 + b"]" * 63 + b"]}", 1),
    "dup_top_level_name": b'{"model_name":"other",' + GOOD[1:],
    "dup_top_level_rows": b'{"rows":3,' + GOOD[1:],
    "dup_top_level_columns": b'{"columns":{"x":[9,9]},' + GOOD[1:],
    "dup_top_level_outputs": GOOD[:-1] + b',"outputs":{"prediction":[7,7]}}',
    "dup_top_level_unknown": GOOD[:-1] + b',"u":1,"u":[2]}',
    "dup_schema_version": GOOD[:-1] + b',"schema_version":3}',
    "dup_column_feature": hand(b'{"x":[1],"x":[2]}', 1),
    "dup_column_other": hand(b'{"x":[1],"y":["a"],"y":["b"]}', 1),
    "dup_column_other_last_short": hand(b'{"x":[1,2],"y":[1,2],"y":[1]}', 2),
    "dup_column_other_first_short": hand(b'{"x":[1,2],"y":[1],"y":[1,2]}', 2),
    "dup_output": hand(b'{"x":[1]}', 1, b'{"prediction":[1],"prediction":[2]}'),
    "trailing_garbage": GOOD + b"x",
    "trailing_second_object": GOOD + b"{}",
    "trailing_comma": GOOD[:-1] + b",}",
    "trailing_nul": GOOD + b"\x00",
    "bom": b"\xef\xbb\xbf" + GOOD,
    "not_an_object": b"[" + GOOD + b"]",
    "empty": b"",
    "empty_object": b"{}",
    "only_ws": b"  \n",
    "columns_empty": record({}, {"prediction": []}, rows=0),
    "columns_empty_rows1": record({}, {"prediction": [1]}, rows=1),
    "columns_null": record(None, rows=0),
    "columns_list": record([[1]], rows=1),
    "column_not_list": hand(b'{"x":1}', 1),
    "column_wrong_length": hand(b'{"x":[1,2],"y":[1]}', 2),
    "rows_mismatch": hand(b'{"x":[1,2]}', 3),
    "rows_zero": hand(b'{"x":[]}', 0),
    "rows_zero_with_outputs": hand(b'{"x":[]}', 0, b'{"prediction":[]}'),
    "rows_negative": hand(b'{"x":[]}', -1),
    "rows_float": GOOD.replace(b'"rows":2', b'"rows":2.0'),
    "rows_exp": GOOD.replace(b'"rows":2', b'"rows":2e0'),
    "rows_string": GOOD.replace(b'"rows":2', b'"rows":"2"'),
    "rows_bool": GOOD.replace(b'"rows":2', b'"rows":true'),
    "rows_null": GOOD.replace(b'"rows":2', b'"rows":null'),
    "rows_leading_zero": GOOD.replace(b'"rows":2', b'"rows":02'),
    "rows_negative_zero": hand(b'{"x":[]}', 0).replace(b'"rows":0', b'"rows":-0'),
    "rows_missing": GOOD.replace(b'"rows":2,', b""),
    "outputs_absent": record({"x": [1.5]}),
    "outputs_empty": record({"x": [1.5]}, {}),
    "outputs_null": record({"x": [1.5]}, None) [:-1] + b',"outputs":null}',
    "outputs_wrong_length": record({"x": [1.5]}, {"prediction": [1, 2]}),
    "outputs_not_list": record({"x": [1.5]}, {"prediction": 1}),
    "output_name_empty": record({"x": [1.5]}, {"": [1]}),
    "column_name_empty": record({"x": [1.5], "": [1]}),
    "column_name_256": record({"x": [1.5], "n" * 256: [1]}),
    "column_name_257": record({"x": [1.5], "n" * 257: [1]}),
    "column_name_129_e_acute": record({"x": [1.5], "é" * 129: [1]}),
    "attributes_null": record({"x": [1.5]}, attributes=None),
    "attributes_absent": record({"x": [1.5]}),
    "attributes_empty": record({"x": [1.5]}, attributes={}),
    "attributes_present": record({"x": [1.5]}, attributes={"client": "ios"}),
    "attributes_invalid": record({"x": [1.5]}, attributes={"client": 1}),
    "attributes_list": record({"x": [1.5]}, attributes=[]),
    "schema_1": record({"x": [1.5]}, schema_version=1),
    "schema_1_instances": orjson.dumps({**doc({"x": [1.5]}, schema_version=1), "instances": [{"x": 1.5}],
                                        "predictions": [1.0]}),
    "schema_2.0": GOOD.replace(b'"schema_version":2', b'"schema_version":2.0'),
    "schema_2e0": GOOD.replace(b'"schema_version":2', b'"schema_version":2e0'),
    "schema_3": record({"x": [1.5]}, schema_version=3),
    "schema_string": record({"x": [1.5]}, schema_version="2"),
    "schema_true": record({"x": [1.5]}, schema_version=True),
    "schema_null": record({"x": [1.5]}, schema_version=None),
    "schema_02": GOOD.replace(b'"schema_version":2', b'"schema_version":02'),
    "schema_missing": GOOD.replace(b'"schema_version":2,', b""),
    "schema_-2": record({"x": [1.5]}, schema_version=-2),
    "part_1_of_1": record({"x": [1.5]}, part=1, parts=1),
    "part_0_of_2": record({"x": [1.5]}, part=0, parts=2),
    "part_1_of_2": record({"x": [1.5]}, part=1, parts=2),
    "part_9999_of_10000": record({"x": [1.5]}, part=9999, parts=10000),
    "parts_10001": record({"x": [1.5]}, part=0, parts=10001),
    "parts_0": record({"x": [1.5]}, part=0, parts=0),
    "part_negative": record({"x": [1.5]}, part=-1, parts=2),
    "part_huge": record({"x": [1.5]}, part=10**17, parts=10**18 - 1),
    "part_19_digits": record({"x": [1.5]}, part=0, parts=10**18),
    "part_float": GOOD.replace(b'"part":0', b'"part":0.0'),
    "part_-0": GOOD.replace(b'"part":0', b'"part":-0'),
    "part_null": GOOD.replace(b'"part":0', b'"part":null'),
    "part_bool": GOOD.replace(b'"part":0', b'"part":false'),
    "parts_true": GOOD.replace(b'"parts":1', b'"parts":true'),
    "part_only": GOOD.replace(b'"parts":1,', b""),
    "parts_only": GOOD.replace(b'"part":0,', b"").replace(b'"parts":1', b'"parts":3'),
    "part_and_parts_absent": GOOD.replace(b'"part":0,"parts":1,', b""),
    "name_empty": record({"x": [1.5]}, model_name=""),
    "name_256": record({"x": [1.5]}, model_name="m" * 256),
    "name_257": record({"x": [1.5]}, model_name="m" * 257),
    "name_256_chars_512_bytes": record({"x": [1.5]}, model_name="é" * 256),
    "name_128_chars_256_bytes": record({"x": [1.5]}, model_name="é" * 128),
    "version_257": record({"x": [1.5]}, model_version="v" * 257),
    "version_256": record({"x": [1.5]}, model_version="v" * 256),
    "time_leap_day": record({"x": [1.5]}, event_time="2012-02-29T23:59:59.999Z"),
    "time_not_leap_day": record({"x": [1.5]}, event_time="2011-02-29T00:00:00.000Z"),
    "time_1900_02_29": record({"x": [1.5]}, event_time="1900-02-29T00:00:00.000Z"),
    "time_2000_02_29": record({"x": [1.5]}, event_time="2000-02-29T00:00:00.000Z"),
    "time_year_0": record({"x": [1.5]}, event_time="0000-01-01T00:00:00.000Z"),
    "time_lowercase": record({"x": [1.5]}, event_time="2012-01-02t00:00:00.000z"),
    "time_space": record({"x": [1.5]}, event_time="2012-01-02 00:00:00.000Z"),
    "time_plus_month": record({"x": [1.5]}, event_time="2012-+1-02T00:00:00.000Z"),
    "time_fullwidth": record({"x": [1.5]}, event_time="２０１２-01-02T00:00:00.000Z"),
    "time_second_60": record({"x": [1.5]}, event_time="2012-01-02T00:00:60.000Z"),
    "name_257_chars": record({"x": [1.5]}, model_name="é" * 257),
    "name_number": record({"x": [1.5]}, model_name=5),
    "name_null": record({"x": [1.5]}, model_name=None),
    "version_empty": record({"x": [1.5]}, model_version=""),
    "request_id_empty": record({"x": [1.5]}, request_id=""),
    "request_id_257": record({"x": [1.5]}, request_id="r" * 257),
    "request_id_unicode": record({"x": [1.5]}, request_id="réq-中-😀"),
    "request_id_missing": GOOD.replace(b'"request_id":"r1",', b""),
    "time_non_canonical": record({"x": [1.5]}, event_time="2012-01-02T00:00:00Z"),
    "time_offset": record({"x": [1.5]}, event_time="2012-01-02T01:00:00.000+01:00"),
    "time_bad_month": record({"x": [1.5]}, event_time="2012-13-02T00:00:00.000Z"),
    "time_bad_day": record({"x": [1.5]}, event_time="2012-02-30T00:00:00.000Z"),
    "time_hour_24": record({"x": [1.5]}, event_time="2012-01-02T24:00:00.000Z"),
    "time_year_1": record({"x": [1.5]}, event_time="0001-01-01T00:00:00.000Z"),
    "time_year_9999": record({"x": [1.5]}, event_time="9999-12-31T23:59:59.999Z"),
    "time_number": record({"x": [1.5]}, event_time=1325462400000),
    "time_missing": GOOD.replace(b'"event_time":"' + T0.encode() + b'",', b""),
    "key_escaped": GOOD.replace(b'"model_name"', b'"model\\u005fname"'),
    "key_escaped_columns": GOOD.replace(b'"columns"', b'"colum\\u006es"'),
    "value_true_in_column": hand(b'{"x":[true]}', 1),
    "value_nan_literal": hand(b'{"x":[NaN]}', 1),
    "value_infinity_literal": hand(b'{"x":[Infinity]}', 1),
    "value_plus": hand(b'{"x":[+1]}', 1),
    "value_leading_dot": hand(b'{"x":[.5]}', 1),
    "value_trailing_dot": hand(b'{"x":[5.]}', 1),
    "value_leading_zero": hand(b'{"x":[01]}', 1),
    "value_bad_exponent": hand(b'{"x":[1e]}', 1),
    "value_minus_only": hand(b'{"x":[-]}', 1),
    "value_hex": hand(b'{"x":[0x10]}', 1),
    "value_trailing_comma": hand(b'{"x":[1,]}', 1),
    "value_missing": hand(b'{"x":[,1]}', 1),
    "value_nul_literal": hand(b'{"x":[nul]}', 1),
    "value_nullx": hand(b'{"x":[nullx]}', 1),
    "value_single_quotes": hand(b"{\"x\":['a']}", 1),
    "column_unclosed": hand(b'{"x":[1}', 1),
    "block_trailing_comma": hand(b'{"x":[1],}', 1),
    "unknown_bad_number": hand(b'{"x":[1]}', 1, extra=b',"u":1e400'),
    "unknown_big_int": hand(b'{"x":[1]}', 1, extra=b',"u":123456789012345678901234567890'),
    "unknown_trailing_comma": hand(b'{"x":[1]}', 1, extra=b',"u":[1,]'),
    "unknown_object_no_colon": hand(b'{"x":[1]}', 1, extra=b',"u":{"a"}'),
    "many_rows": record({"x": list(range(5000)), "y": ["c%d" % (i % 7) for i in range(5000)]},
                        {"prediction": [i / 7 for i in range(5000)]}),
}


@pytest.mark.parametrize("name", list(STRUCTURE_CASES))
def test_structure_cases_follow_the_contract(name):
    raw = STRUCTURE_CASES[name]
    outcomes = check_all_layouts(raw, names=("x", "y"), out_names=("prediction",))
    assert outcomes, name


@pytest.mark.parametrize("name", ["plain", "pretty", "whitespace_everywhere", "keys_reversed", "unknown_nested",
                                  "unknown_before_header", "unknown_deep_60", "rows_zero", "outputs_absent",
                                  "outputs_empty", "attributes_null", "attributes_absent", "part_1_of_2",
                                  "part_9999_of_10000", "name_256", "name_128_chars_256_bytes", "request_id_unicode",
                                  "column_name_256", "many_rows", "part_and_parts_absent", "dup_top_level_unknown",
                                  "rows_negative_zero", "part_-0"])
def test_plain_structure_cases_are_accepted(name):
    """Not part of the contract, but without it the differential checks would prove nothing."""
    assert scan_record(STRUCTURE_CASES[name]) is not None


@pytest.mark.parametrize("name", ["column_wrong_length", "rows_mismatch", "rows_negative",
                                  "dup_column_other_last_short", "outputs_wrong_length", "outputs_null",
                                  "output_name_empty", "column_name_empty", "column_name_257", "attributes_invalid",
                                  "attributes_list", "schema_1", "schema_3", "schema_string", "schema_true",
                                  "part_1_of_1", "parts_10001", "parts_0", "part_negative", "part_19_digits",
                                  "name_empty", "name_257", "name_257_chars", "version_empty", "request_id_257",
                                  "time_bad_month", "time_bad_day", "time_hour_24", "trailing_garbage", "bom",
                                  "value_nan_literal", "value_leading_zero", "unknown_bad_number", "part_float",
                                  "rows_float", "schema_2.0", "part_null", "time_number"])
def test_records_the_general_path_refuses_are_declined(name):
    raw = STRUCTURE_CASES[name]
    with pytest.raises(RecordError):
        decode_record(raw)
    assert scan_record(raw) is None


def test_duplicate_feature_column_is_declined_at_commit():
    raw = STRUCTURE_CASES["dup_column_feature"]
    assert decode_record(raw).columns["x"] == [2]  # orjson: the last one counts
    assert check_values(raw, (NUM,)) in ("scan", "commit")
    assert check_values(raw, (CAT,)) in ("scan", "commit")


def test_attributes_given_are_declined_and_kept_by_the_general_path():
    raw = STRUCTURE_CASES["attributes_present"]
    assert scan_record(raw) is None
    assert dict(decode_record(raw).attributes) == {"client": "ios"}


def test_every_prefix_of_a_valid_record_is_declined():
    raw = record({"x": [1.5, None, -0.0, 12, 1e-7], "y": ["a", "é", "", None, "中文"]},
                 {"prediction": [1.0, 2.0, 3.0, 4.0, 5.0]}, unknown=[{"a": [True, False, None]}])
    assert scan_record(raw) is not None
    p = new_pending((NUM,), (PRED,))
    for i in range(len(raw)):
        assert scan_record(raw[:i]) is None, raw[:i]
        assert p.commit(SCANNER, raw[:i]) is False
    assert p.rows == 0
    # and every suffix of it (no leading '{')
    for i in range(1, len(raw)):
        assert scan_record(raw[i:]) is None


def test_a_long_number_whose_exponent_overflows_is_declined():
    """The C parser keeps only the first 6 exponent digits: 0.(99999 zeros)1e1000005 is 1e900005, an
    infinity orjson refuses (not_json), not 1.0."""
    big = b"0." + b"0" * 99_999 + b"1e1000005"
    raw = num_record(big)
    with pytest.raises(RecordError):
        decode_record(raw)
    assert scan_record(raw) is None
    # the same number in a key nobody reads
    raw2 = hand(b'{"x":[1]}', 1, extra=b',"u":' + big)
    with pytest.raises(RecordError):
        decode_record(raw2)
    assert scan_record(raw2) is None


def test_a_partial_never_raises_for_a_record_the_fast_path_accepted():
    """What the fast path accepts, an OpenPartial may decode later (a declined commit, the row sample):
    the general path must read it, or add/close raise instead of the record being dead-lettered."""
    big = b"0." + b"0" * 99_999 + b"1e1000005"
    for raw in (hand(b'{"temp":[1.5]}', 1, extra=b',"u":' + big),  # sampled: close() decodes it
                hand(b'{"temp":[true]}', 1, extra=b',"u":' + big)):  # commit declines: add() decodes it
        head = scan_record(raw)
        if head is None:
            continue  # declined: the general path dead-letters it
        partial = OpenPartial(KEY, T0_MS + 3_600_000, BIKE_SPECS, BIKE_OUTPUTS, sample_records=5)
        partial.add(head, 0, late=False, raw=raw)
        partial.close("topic", 0)


def test_long_numbers_with_six_digit_exponents_read_exactly():
    texts = [b"0." + b"0" * 99_994 + b"1e100005", b"0." + b"0" * 99_999 + b"1e100000",
             b"0." + b"0" * 123_455 + b"25e123456", b"-0." + b"0" * 99_999 + b"1e100022"]
    check_number_texts(texts)


@settings(deadline=None, max_examples=100)
@given(st.integers(0, 10_000), st.integers(0, 13), st.integers(0, 32), st.integers(0, 25), st.integers(0, 61),
       st.integers(0, 61), st.integers(0, 999))
@example(1, 1, 1, 0, 0, 0, 0)
@example(9999, 12, 31, 23, 59, 59, 999)
@example(2000, 2, 29, 0, 0, 0, 0)
@example(1900, 2, 29, 0, 0, 0, 0)
@example(1600, 2, 29, 12, 0, 0, 1)
@example(1969, 12, 31, 23, 59, 59, 999)
def test_canonical_event_times_are_read_like_the_general_path(y, mo, d, h, mi, sec, ms):
    text = f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{sec:02d}.{ms:03d}Z"
    raw = record({"x": [1.0]}, event_time=text[:24])
    decoded = check_header(raw)
    try:
        valid = 1 <= y <= 9999 and h <= 23 and mi <= 59 and sec <= 59 and bool(datetime.date(y, mo, d))
    except ValueError:
        valid = False
    if valid and len(text) == 24:  # what serving writes does take the fast path
        assert decoded is not None and decoded.event_time_ms == T0_MS + (
            datetime.datetime(y, mo, d, h, mi, sec, ms * 1000) - datetime.datetime(2012, 1, 2)) // datetime.timedelta(
            milliseconds=1)


# -- feature values of the wrong type -------------------------------------------------------------

def _general_checked(raw, spec):
    d = decode_record(raw)
    return check_columns(d.columns, d.rows, (spec,))


def test_bools_in_numeric_columns_are_declined_at_commit():
    raw = record({"x": [1.5, True, False, None]})
    assert scan_record(raw) is not None
    assert check_values(raw, (NUM,)) == "commit"
    assert _general_checked(raw, NUM).invalid == 2  # the general path drops those rows


def test_bools_in_categorical_columns_are_declined_at_commit():
    raw = record({"x": ["a", True, False, None]})
    assert check_values(raw, (CAT,)) == "commit"
    counts = _general_checked(raw, CAT).columns["x"].counts
    assert counts == {"a": 1, "true": 1, "false": 1}  # the general path counts them as "true"/"false"


@pytest.mark.parametrize("value", [1, 0, -0.0, 1.5, 1e300, 10**17])
def test_numbers_in_categorical_columns_are_declined_at_commit(value):
    raw = record({"x": ["a", value, None]})
    assert check_values(raw, (CAT,)) == "commit"
    assert _general_checked(raw, CAT).invalid == 0  # the general path normalises them


@pytest.mark.parametrize("value", ["1.5", "", "nan", "a" * 300])
def test_strings_in_numeric_columns_are_declined_at_commit(value):
    raw = record({"x": [1.0, value, None]})
    assert check_values(raw, (NUM,)) == "commit"
    assert _general_checked(raw, NUM).invalid == 1


@pytest.mark.parametrize("value", [[1.0], [], {}, {"a": 1}, [[None]], ["a"]])
def test_nested_values_in_feature_columns_are_declined_at_commit(value):
    raw = record({"x": [1.0, value]})
    assert check_values(raw, (NUM,)) == "commit"
    raw = record({"x": ["a", value]})
    assert check_values(raw, (CAT,)) == "commit"
    assert _general_checked(raw, CAT).invalid == 1
    # in a column no feature reads, they do not stop the record
    raw = record({"x": [1.0, 2.0], "other": [value, value]})
    assert check_values(raw, (NUM,)) == "taken"


@pytest.mark.parametrize("value", ["a", True, [1], {"a": 1}])
def test_wrong_types_in_numeric_outputs_are_declined_at_commit(value):
    raw = record({"x": [1.0, 2.0]}, {"prediction": [1.0, value]})
    assert check_values(raw, (NUM,), (PRED,)) == "commit"
    assert check_values(raw, (NUM,), ()) == "taken"


@pytest.mark.parametrize("value", [1, 2.5, False, [1]])
def test_wrong_types_in_categorical_outputs_are_declined_at_commit(value):
    raw = record({"x": [1.0, 2.0]}, {"label": ["a", value]})
    assert check_values(raw, (NUM,), (LABEL,)) == "commit"


def test_absent_features_are_missing_in_every_row():
    specs = (NUM, FeatureSpec(name="c", kind="categorical", dtype="string"))
    raw = record({"other": [1, 2, 3]})
    assert check_values(raw, specs, (PRED, LABEL)) == "taken"
    p = new_pending(specs, (PRED, LABEL))
    assert p.commit(SCANNER, raw)
    rows, ins, outs = p.take()
    assert rows == 3 and ins[0] == NAN_BYTES * 3 and ins[1] == ({}, 3)
    assert outs == [NAN_BYTES * 3, ({}, 3)]


# -- fuzzing --------------------------------------------------------------------------------------

def _seed_records() -> list[bytes]:
    rng = random.Random(1)
    seeds = []
    for i in range(12):
        n = rng.randint(1, 4)
        vals = [None, 0, -0.0, 1.5, 1e-7, 123456789, 2.5e300, -17, 0.1]
        cats = [None, "", "spring", "é", "中文", "😀", "a b"]
        cols = {"temp": [rng.choice(vals) for _ in range(n)], "season": [rng.choice(cats) for _ in range(n)],
                "hum": [rng.choice(vals) for _ in range(n)]}
        if i % 3 == 0:
            cols["weathersit"] = [rng.choice(cats) for _ in range(n)]
        if i % 4 == 1:
            cols["extra"] = [[1, {"a": None}]] * n
        outs = {"prediction": [rng.choice(vals) for _ in range(n)]}
        if i % 2:
            outs["label"] = [rng.choice(cats) for _ in range(n)]
        extra = {"meta": {"k": [1, "v", True]}} if i % 5 == 2 else {}
        seeds.append(record(cols, outs, request_id=f"r{i}", **extra))
    seeds.append(orjson.dumps(orjson.loads(seeds[0]), option=orjson.OPT_INDENT_2))
    return seeds


_INTERESTING = b'"\\{}[],:0123456789-+.eE ntfalsu\x00\x1f\x7f\x80\xbf\xc0\xc3\xe0\xed\xf0\xf4\xf5\xff\t\n'


def _mutate(rng: random.Random, raw: bytes) -> bytes:
    b = bytearray(raw)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        if not b:
            break
        op = rng.randrange(7)
        i = rng.randrange(len(b))
        if op == 0:
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            b[i] = rng.choice(_INTERESTING)
        elif op == 2:
            b.insert(i, rng.choice(_INTERESTING))
        elif op == 3:
            del b[i]
        elif op == 4:
            j = min(len(b), i + rng.randint(1, 8))
            b[i:i] = b[i:j]
        elif op == 5:
            del b[i:]
        else:
            b[i] = rng.randrange(256)
    return bytes(b)


def test_random_byte_mutations_of_valid_records():
    rng = random.Random(424242)
    seeds = _seed_records()
    specs = BIKE_SPECS
    pending = new_pending(specs, BIKE_OUTPUTS)
    accepted = 0
    for _ in range(8_000):
        m = _mutate(rng, rng.choice(seeds))
        decoded = check_header(m)
        ok = pending.commit(SCANNER, m)  # never a crash, whatever the bytes
        assert ok in (True, False)
        if decoded is not None:
            accepted += 1
            check_values(m, specs, BIKE_OUTPUTS)
        if pending.rows > 10_000:
            pending.take()
    assert accepted > 400  # plenty of mutants stay valid: the checks ran


_json = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.integers(-2**63, 2**64 - 1)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(_json, st.lists(_json, min_size=1, max_size=4), st.lists(_json, min_size=1, max_size=4))
def test_random_json_documents_wrapped_as_records(unknown, column, output):
    n = len(column)
    output = (output * n)[:n]
    raws = [
        record({"x": column}, {"prediction": output}, unknown=unknown),
        record({"x": column, "y": column}, {"prediction": output, "label": output}),
        orjson.dumps({"u": unknown, **doc({"x": column})}),
        record({"x": [1.0] * n, "junk": column}, {"junk": output}),
    ]
    for raw in raws:
        check_all_layouts(raw, names=("x", "y"), out_names=("prediction", "label"))
    if isinstance(unknown, dict):  # a random document as the record itself
        check_header(orjson.dumps({**unknown, **doc({"x": column})}))
        check_header(orjson.dumps({**doc({"x": column}), **unknown}))


def _spaced(value, rng: random.Random) -> bytes:
    """JSON of ``value`` with random legal whitespace between every token."""
    def ws() -> bytes:
        return bytes(rng.choice(b" \t\n\r") for _ in range(rng.choice([0, 0, 1, 3])))
    if isinstance(value, dict):
        items = [ws() + orjson.dumps(k) + ws() + b":" + ws() + _spaced(v, rng) + ws() for k, v in value.items()]
        return b"{" + (b",".join(items) if items else ws()) + b"}"
    if isinstance(value, list):
        items = [ws() + _spaced(v, rng) + ws() for v in value]
        return b"[" + (b",".join(items) if items else ws()) + b"]"
    return orjson.dumps(value)


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False).filter(
                                        lambda f: f == 0 or abs(f) >= sys.float_info.min),  # subnormals: declined
                                    st.integers(-10**18 + 1, 10**18 - 1)),
                          st.one_of(st.none(), st.sampled_from(["", "a", "é", "中文", "😀"]))), min_size=1, max_size=5),
       st.randoms(use_true_random=False), st.booleans())
def test_whitespace_and_key_order_do_not_change_what_is_taken(rows, rng, shuffle):
    d = doc({"x": [r[0] for r in rows], "y": [r[1] for r in rows]}, {"prediction": [r[0] for r in rows]},
            unknown={"a": [1, {"b": None}]})
    if shuffle:
        items = list(d.items())
        rng.shuffle(items)
        d = dict(items)
    compact, spaced = orjson.dumps(d), b" \n" + _spaced(d, rng) + b"\t"
    specs = (NUM, FeatureSpec(name="y", kind="categorical", dtype="string"))
    assert check_values(compact, specs, (PRED,)) == "taken"
    assert check_values(spaced, specs, (PRED,)) == "taken", spaced
    a, b = new_pending(specs, (PRED,)), new_pending(specs, (PRED,))
    assert a.commit(SCANNER, compact) and b.commit(SCANNER, spaced)
    assert a.take() == b.take()


_scalar_values = st.one_of(
    st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "a", "spring", "é", "中文", "😀", "x" * 256, "x" * 257, "\\", "\"", "\n"]), st.text(max_size=4),
)


@settings(deadline=None, max_examples=80, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["x", "y", "z", "é"]), st.lists(_scalar_values, min_size=3, max_size=3),
                       min_size=1),
       st.dictionaries(st.sampled_from(["prediction", "label"]), st.lists(_scalar_values, min_size=3, max_size=3)))
def test_random_scalar_columns(columns, outputs):
    raw = record(columns, outputs)
    check_all_layouts(raw, names=("x", "y", "é"), out_names=("prediction", "label"))


# -- memory and the scanner's scratch -------------------------------------------------------------

def test_a_record_of_a_few_megabytes_scanned_repeatedly():
    n = 60_000
    raw = record({"temp": [i / 3 for i in range(n)], "hum": [None if i % 11 == 0 else i for i in range(n)],
                  "season": ["s%d" % (i % 500) for i in range(n)], "weathersit": ["é中%d" % (i % 3) for i in range(n)]},
                 {"prediction": [i * 1.25 for i in range(n)], "label": ["lo" if i % 2 else "" for i in range(n)]})
    assert len(raw) > 2_000_000
    head = scan_record(raw)
    for _ in range(10):
        assert scan_record(raw) == head
    assert check_values(raw, BIKE_SPECS, BIKE_OUTPUTS) == "taken"
    p = new_pending(BIKE_SPECS, BIKE_OUTPUTS)
    for _ in range(3):
        assert p.commit(SCANNER, raw)
    rows, ins, outs = p.take()
    assert rows == 3 * n and len(ins[0]) == 3 * n * 8
    assert sum(ins[2][0].values()) == 3 * n and len(ins[2][0]) == 500


def test_commit_rescans_when_the_scanner_holds_another_record():
    a = record({"x": [1.0, 2.0]})
    b = record({"x": [3.0]})
    assert scan_record(a) is not None and SCANNER.holds(a)
    p = new_pending((NUM,), ())
    assert p.commit(SCANNER, b) is True  # rescans b, does not use a's values
    assert SCANNER.holds(b) and not SCANNER.holds(a)
    assert p.commit(SCANNER, b) is True  # held: reused
    assert p.commit(SCANNER, a) is True
    rows, ins, _ = p.take()
    assert rows == 4 and np.frombuffer(ins[0]).tolist() == [3.0, 3.0, 1.0, 2.0]
    # an equal but distinct bytes object is rescanned too
    b2 = bytes(bytearray(b))
    assert b2 is not b and p.commit(SCANNER, b2) and p.take()[0] == 1


def test_commit_with_another_scanner():
    other = _scan.Scanner(LoggedRecord, NO_ATTRIBUTES)
    a = record({"x": [1.0, 2.0]})
    assert other.scan(a) is not None
    p = new_pending((NUM,), ())
    assert p.commit(other, a) is True and p.commit(SCANNER, a) is True
    assert np.frombuffer(p.take()[1][0]).tolist() == [1.0, 2.0, 1.0, 2.0]


@pytest.mark.parametrize("convert", [bytearray, memoryview, lambda b: b.decode(), lambda b: None, lambda b: 5,
                                     lambda b: type("B", (bytes,), {})(b)])
def test_commit_and_scan_of_a_non_bytes_object_decline(convert):
    raw = record({"x": [1.0]})
    assert scan_record(raw) is not None
    obj = convert(raw)
    p = new_pending((NUM,), ())
    assert p.commit(SCANNER, obj) is False
    assert p.rows == 0 and p.take() == (0, [b""], [])
    assert SCANNER.scan(obj) is None


def test_commit_needs_a_scanner():
    with pytest.raises(TypeError):
        new_pending((NUM,), ()).commit(object(), record({"x": [1.0]}))


def test_pending_with_no_inputs_and_no_outputs():
    raw = record({"x": [1.0, 2.0]}, {"prediction": [3.0, 4.0]})
    p = _scan.Pending((), (("prediction", True),))
    assert p.commit(SCANNER, raw) is True
    assert p.take() == (2, [], [np.array([3.0, 4.0]).tobytes()])
    q = _scan.Pending((), ())
    assert q.commit(SCANNER, raw) is True and q.rows == 2
    assert q.take() == (2, [], [])
    assert q.take() == (0, [], [])


def test_pending_layout_errors():
    with pytest.raises(TypeError):
        _scan.Pending([("x", True, 1)], ())
    with pytest.raises(TypeError):
        _scan.Pending([(1, True)], ())
    with pytest.raises(TypeError):
        _scan.Pending(5, ())
    p = _scan.Pending((), ())
    with pytest.raises(RuntimeError):
        p.__init__((("x", True),), ())


def test_scanner_arguments():
    with pytest.raises(TypeError):
        _scan.Scanner()
    with pytest.raises(TypeError):
        _scan.Scanner(dict, NO_ATTRIBUTES)  # not a tuple type
    with pytest.raises(TypeError):
        _scan.Scanner(LoggedRecord(*[None] * 5), NO_ATTRIBUTES)  # not a type
    with pytest.raises(ValueError):
        _scan.Scanner(LoggedRecord, NO_ATTRIBUTES, max_parts=0)
    sc = _scan.Scanner(LoggedRecord, NO_ATTRIBUTES, max_parts=3)
    head = sc.scan(record({"x": [1]}, part=2, parts=3))
    assert type(head) is LoggedRecord and head.attributes is NO_ATTRIBUTES and (head.part, head.parts) == (2, 3)
    assert sc.scan(record({"x": [1]}, part=0, parts=4)) is None
    assert scan_record(record({"x": [1]}, part=0, parts=MAX_PARTS)) is not None
    assert scan_record(record({"x": [1]}, part=0, parts=MAX_PARTS + 1)) is None


def test_scanner_max_columns():
    with pytest.raises(ValueError):
        _scan.Scanner(LoggedRecord, NO_ATTRIBUTES, max_columns=0)
    with pytest.raises(ValueError):
        _scan.Scanner(LoggedRecord, NO_ATTRIBUTES, max_columns=-5)
    sc = _scan.Scanner(LoggedRecord, NO_ATTRIBUTES, max_columns=2)
    assert sc.scan(record({"a": [1], "b": [2]}, {"p": [1], "q": [2]})) is not None  # per block
    assert sc.scan(record({"a": [1], "b": [2], "c": [3]})) is None
    assert sc.scan(record({"a": [1]}, {"p": [1], "q": [2], "r": [3]})) is None
    assert sc.scan(hand(b'{"a":[1],"a":[1],"a":[1]}', 1)) is None  # duplicates count too


def test_records_with_more_than_max_columns_are_declined():
    cols = {f"c{i}": [i] for i in range(MAX_COLUMNS + 1)}
    raw = record(cols)
    assert scan_record(raw) is None
    with pytest.raises(RecordError):
        decode_record(raw)
    cols.pop("c0")
    raw = record(cols)
    assert check_values(raw, (FeatureSpec(name="c5", kind="numeric", dtype="int"),)) == "taken"


def test_more_than_64_features_in_a_layout():
    specs = tuple(FeatureSpec(name=f"f{i}", kind="numeric" if i % 2 else "categorical",
                              dtype="float" if i % 2 else "string") for i in range(150))
    cols = {f"f{i}": ([i, None] if i % 2 else [f"v{i}", None]) for i in range(0, 150, 3)}
    raw = record(cols)
    assert check_values(raw, specs) == "taken"
    bad = dict(cols, f149=["a", "b"])  # a string in a numeric feature past the 64th
    assert check_values(record(bad), specs) == "commit"


def test_many_distinct_categories_across_commits():
    p = new_pending((CAT,), ())
    want = collections.Counter()
    for k in range(40):
        vals = [f"v{(k * 37 + i) % 3000}" for i in range(200)]
        want.update(vals)
        assert p.commit(SCANNER, record({"x": vals}))
    rows, ins, _ = p.take()
    assert rows == 8000 and ins[0] == (dict(want), 0)
    assert p.take() == (0, [({}, 0)], [])
    assert p.commit(SCANNER, record({"x": ["v1", "v1"]}))
    assert p.take()[1][0] == ({"v1": 2}, 0)


def test_scanner_reference_to_the_record_is_released():
    a = record({"x": [1.0]}) + b" "
    b = record({"x": [2.0]})
    base = sys.getrefcount(a)
    assert scan_record(a) is not None
    assert sys.getrefcount(a) == base + 1  # held by the scratch
    scan_record(b)
    assert sys.getrefcount(a) == base
    p = new_pending((NUM,), ())
    for _ in range(5):
        p.commit(SCANNER, a)
    scan_record(b"not json")
    assert sys.getrefcount(a) == base
    assert not SCANNER.holds(a)


def test_no_memory_growth_over_repeated_scans_and_commits():
    raws = [record({"temp": [0.5] * 50, "season": [f"s{i}" for i in range(50)]}, {"label": ["a"] * 50}),
            hand(b'{"temp":[1,2],"season":["a","b"]}', 3), b"{", record({"temp": ["a"] * 50})]
    p = new_pending(BIKE_SPECS, BIKE_OUTPUTS)

    def loop(n):
        for _ in range(n):
            for raw in raws:
                scan_record(raw)
                p.commit(SCANNER, raw)
            p.take()

    loop(50)
    tracemalloc.start()
    try:
        loop(50)
        first = tracemalloc.get_traced_memory()[0]
        loop(500)
        second = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert second - first < 100_000


# -- profiles through an OpenPartial ----------------------------------------------------------------

KEY = WindowKey(model="bikeshare", model_version="v1", segment=ALL_TRAFFIC, start_ms=T0_MS)


def _partials(raws, *, sample_records=5):
    fast = OpenPartial(KEY, T0_MS + 3_600_000, BIKE_SPECS, BIKE_OUTPUTS, sample_records=sample_records)
    slow = OpenPartial(KEY, T0_MS + 3_600_000, BIKE_SPECS, BIKE_OUTPUTS, sample_records=sample_records)
    paths = collections.Counter()
    probe = new_pending(BIKE_SPECS, BIKE_OUTPUTS)
    for offset, raw in enumerate(raws):
        decoded = general(raw)
        head = scan_record(raw)
        if head is not None:
            assert decoded is not None
            paths["scanned"] += 1
            paths["fell_back"] += head.rows > 0 and not probe.commit(SCANNER, raw)
            scan_record(raw)
            fast.add(head, offset, late=False, raw=raw)
        elif decoded is not None:
            fast.add(decoded, offset, late=False)
            paths["declined"] += 1
        else:
            continue
        slow.add(decoded, offset, late=False)
    return fast.close("topic", 3), slow.close("topic", 3), paths


def _assert_same_partials(a, b):
    assert a.counts == b.counts
    assert (a.first_offset, a.last_offset) == (b.first_offset, b.last_offset)
    assert a.errors == b.errors
    assert a.features == b.features
    assert a.outputs == b.outputs
    assert a.sample == b.sample


def _mixed_records(rng: random.Random, n: int) -> list[bytes]:
    out = []
    cats = ["spring", "summer", "é", "中文", "", None, "x" * 300]
    for i in range(n):
        rows = rng.randint(0, 6)
        cols = {"temp": [rng.choice([None, 0.25, -0.0, 1e-7, 17, 3.5e300, 0.1 * i]) for _ in range(rows)],
                "season": [rng.choice(cats[:6]) for _ in range(rows)]}
        if rng.random() < 0.5:
            cols["hum"] = [rng.random() for _ in range(rows)]
        if rng.random() < 0.3:
            cols["weathersit"] = [rng.choice(cats) for _ in range(rows)]  # long values: commit declines
        outs = {"prediction": [rng.uniform(0, 500) for _ in range(rows)]}
        if rng.random() < 0.3:
            outs["label"] = [rng.choice(cats[:6]) for _ in range(rows)]
        kind = rng.random()
        if kind < 0.1 and rows:
            cols["temp"][0] = True  # an invalid row: commit declines, the general path drops it
        elif kind < 0.2 and rows:
            cols["season"][0] = 7  # a number as a category: commit declines
        elif kind < 0.3:
            cols["season"] = [f'q"{j}' for j in range(rows)]  # escapes: scan declines
        elif kind < 0.35:
            out.append(record(cols, outs, rows=rows, request_id=f"r{i}", attributes={"client": "ios"}))
            continue
        elif kind < 0.4:
            out.append(record(cols, outs, rows=rows, request_id=f"r{i}", event_time="2012-01-02T00:00:00Z"))
            continue
        elif kind < 0.45:
            out.append(out[-1] if out else record(cols, outs, rows=rows, request_id=f"r{i}"))  # a duplicate
            continue
        elif kind < 0.5:
            out.append(record(cols, outs, rows=rows, request_id=f"split{i // 4}", part=i % 4, parts=4))
            continue
        out.append(record(cols, outs, rows=rows, request_id=f"r{i}"))
    return out


@pytest.mark.parametrize("flush_rows", [16384, 7, 1])
def test_partials_are_the_same_bytes_through_either_path(monkeypatch, flush_rows):
    monkeypatch.setattr(partials_module, "_FLUSH_ROWS", flush_rows)  # rows buffered as lists
    monkeypatch.setattr(partials_module, "_SCANNED_MAX_ROWS", flush_rows)  # scanned rows
    raws = _mixed_records(random.Random(flush_rows), 400)
    fast, slow, paths = _partials(raws)
    assert paths["scanned"] > 100 and paths["declined"] > 20 and paths["fell_back"] > 5
    _assert_same_partials(fast, slow)


def test_partial_of_only_scanned_records():
    raws = [record({"temp": [0.5, None], "season": ["a", ""], "hum": [1, 2]}, {"prediction": [1.0, 2.0]},
                   request_id=f"r{i}") for i in range(50)]
    fast, slow, paths = _partials(raws, sample_records=3)
    assert paths["scanned"] == 50
    _assert_same_partials(fast, slow)
    assert fast.counts.rows == 100


@settings(deadline=None, max_examples=20, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(
    st.dictionaries(st.sampled_from(["temp", "hum", "season", "weathersit", "other"]),
                    st.lists(_scalar_values, min_size=2, max_size=2)),
    st.dictionaries(st.sampled_from(["prediction", "label"]), st.lists(_scalar_values, min_size=2, max_size=2)),
), min_size=1, max_size=12))
def test_partials_of_random_records_are_the_same_bytes(items):
    raws = [record(cols, outs, rows=2, request_id=f"r{i}") for i, (cols, outs) in enumerate(items)]
    fast, slow, _ = _partials(raws, sample_records=4)
    _assert_same_partials(fast, slow)


def test_a_record_the_general_path_refuses_after_the_fast_path_took_its_header_is_counted_not_raised(monkeypatch):
    """Belt and braces: should the two paths ever disagree (a header taken, the values then refused), the
    partial counts the record's rows as invalid and keeps its offsets; nothing raises, at add or at close."""
    import collectors.scanned as scanned_module

    def refuse(rec, raw):
        raise RecordError("refused by the general path")

    good = record({"temp": [1.0], "hum": [2.0], "season": ["a"], "weathersit": ["b"]}, request_id="good")
    odd = record({"temp": [True], "hum": [2.0], "season": ["a"], "weathersit": ["b"]}, request_id="odd")  # declined at commit
    partial = OpenPartial(KEY, T0_MS + 3_600_000, BIKE_SPECS, BIKE_OUTPUTS, sample_records=5)
    assert partial.add(scan_record(good), 0, late=False, raw=good)
    monkeypatch.setattr(scanned_module, "full", refuse)
    assert partial.add(scan_record(odd), 1, late=False, raw=odd)
    closed = partial.close("t", 0)
    assert (closed.counts.rows, closed.counts.records, closed.counts.invalid_instances) == (1, 2, 1)
    assert (closed.first_offset, closed.last_offset) == (0, 1)
    assert any("refused by the general path" in e for e in closed.errors)
    assert orjson.loads(closed.sample) == []  # the sampled records could not be shown: left out, not raised
