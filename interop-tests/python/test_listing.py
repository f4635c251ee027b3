"""ListObjects v1 and v2: order, prefixes, delimiters, pagination,
start-after, markers and encoding-type=url."""

import urllib.parse
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor

from harness import error_of
from rawhttp import Signer

KEYS = [
    "a.txt",
    "dir/one.txt",
    "dir/sub/two.txt",
    "dir/sub/three.txt",
    "dir2/four.txt",
    "z/deep/er/five.txt",
    "zz.txt",
]


def put_all(s3, bucket, keys):
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())


def all_pages_v2(s3, **kwargs):
    pages, token = [], None
    for _ in range(10_000):
        args = dict(kwargs)
        if token:
            args["ContinuationToken"] = token
        page = s3.list_objects_v2(**args)
        pages.append(page)
        if not page["IsTruncated"]:
            return pages
        token = page["NextContinuationToken"]
        assert token, "a truncated page has a continuation token"
    raise AssertionError("listing did not end")


def test_v2_lists_every_key_in_order_with_size_and_etag(s3, bucket):
    put_all(s3, bucket, KEYS)
    resp = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in resp["Contents"]] == sorted(KEYS)
    assert resp["KeyCount"] == len(KEYS)
    assert resp["IsTruncated"] is False
    for o in resp["Contents"]:
        assert o["Size"] == len(o["Key"])
        assert o["ETag"].startswith('"') and len(o["ETag"]) == 34
        assert o.get("StorageClass", "STANDARD") == "STANDARD"


def test_an_empty_bucket_lists_nothing(s3, bucket):
    resp = s3.list_objects_v2(Bucket=bucket)
    assert resp["KeyCount"] == 0 and "Contents" not in resp and resp["IsTruncated"] is False


def test_delimiter_folds_directories_into_common_prefixes(s3, bucket):
    put_all(s3, bucket, KEYS)
    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in top["Contents"]] == ["a.txt", "zz.txt"]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["dir/", "dir2/", "z/"]
    assert top["KeyCount"] == 5, "KeyCount counts keys and common prefixes"

    inner = s3.list_objects_v2(Bucket=bucket, Delimiter="/", Prefix="dir/")
    assert [o["Key"] for o in inner["Contents"]] == ["dir/one.txt"]
    assert [p["Prefix"] for p in inner["CommonPrefixes"]] == ["dir/sub/"]

    partial = s3.list_objects_v2(Bucket=bucket, Delimiter="/", Prefix="di")
    assert "Contents" not in partial
    assert [p["Prefix"] for p in partial["CommonPrefixes"]] == ["dir/", "dir2/"]


def test_prefix_without_delimiter_lists_the_whole_subtree(s3, bucket):
    put_all(s3, bucket, KEYS)
    resp = s3.list_objects_v2(Bucket=bucket, Prefix="dir/sub/t")
    assert [o["Key"] for o in resp["Contents"]] == ["dir/sub/three.txt", "dir/sub/two.txt"]
    assert s3.list_objects_v2(Bucket=bucket, Prefix="nothing")["KeyCount"] == 0


def test_max_keys_pages_through_with_continuation_tokens(s3, bucket):
    put_all(s3, bucket, KEYS)
    pages = all_pages_v2(s3, Bucket=bucket, MaxKeys=2)
    assert [len(p.get("Contents", [])) for p in pages] == [2, 2, 2, 1]
    assert [o["Key"] for p in pages for o in p["Contents"]] == sorted(KEYS)
    assert all(p["MaxKeys"] == 2 for p in pages)


def test_pagination_with_delimiter_never_repeats_a_prefix(s3, bucket):
    put_all(s3, bucket, KEYS)
    pages = all_pages_v2(s3, Bucket=bucket, MaxKeys=1, Delimiter="/")
    seen = []
    for p in pages:
        seen += [o["Key"] for o in p.get("Contents", [])]
        seen += [c["Prefix"] for c in p.get("CommonPrefixes", [])]
        assert p["KeyCount"] <= 1
    assert seen == ["a.txt", "dir/", "dir2/", "z/", "zz.txt"]


def test_start_after_skips_keys_up_to_and_including_it(s3, bucket):
    put_all(s3, bucket, KEYS)
    resp = s3.list_objects_v2(Bucket=bucket, StartAfter="dir/sub/three.txt")
    assert [o["Key"] for o in resp["Contents"]] == ["dir/sub/two.txt", "dir2/four.txt", "z/deep/er/five.txt", "zz.txt"]
    resp = s3.list_objects_v2(Bucket=bucket, StartAfter="dir/sub/")
    assert resp["Contents"][0]["Key"] == "dir/sub/three.txt"
    assert s3.list_objects_v2(Bucket=bucket, StartAfter="zzz")["KeyCount"] == 0


def test_fetch_owner_names_the_owner(s3, bucket):
    put_all(s3, bucket, ["k"])
    resp = s3.list_objects_v2(Bucket=bucket, FetchOwner=True)
    assert resp["Contents"][0]["Owner"]["ID"]


def test_v1_lists_with_marker_and_next_marker(s3, bucket):
    put_all(s3, bucket, KEYS)
    first = s3.list_objects(Bucket=bucket, MaxKeys=3)
    assert [o["Key"] for o in first["Contents"]] == sorted(KEYS)[:3]
    assert first["IsTruncated"] is True
    rest = s3.list_objects(Bucket=bucket, Marker=first["Contents"][-1]["Key"])
    assert [o["Key"] for o in rest["Contents"]] == sorted(KEYS)[3:]
    assert rest["IsTruncated"] is False

    folded = s3.list_objects(Bucket=bucket, Delimiter="/", MaxKeys=2)
    assert folded["IsTruncated"] is True
    assert folded["NextMarker"], "v1 with a delimiter returns NextMarker"
    after = s3.list_objects(Bucket=bucket, Delimiter="/", Marker=folded["NextMarker"])
    names = [o["Key"] for o in after.get("Contents", [])] + [p["Prefix"] for p in after.get("CommonPrefixes", [])]
    assert sorted(names) == ["dir2/", "z/", "zz.txt"]


def test_encoding_type_url_encodes_keys_and_prefixes_in_the_xml(server, s3, bucket):
    keys = ["sp ace/x", "plus+sign", "uni/é", "ctl\x01char"]
    put_all(s3, bucket, keys)
    signer = Signer(server.host, server.access_key, server.secret_key)
    resp = signer.request("GET", f"/{bucket}", query={"list-type": "2", "encoding-type": "url", "delimiter": "/"})
    assert resp.status_code == 200, resp.text
    ns = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
    root = ET.fromstring(resp.content)
    assert root.findtext("s3:EncodingType", namespaces=ns) == "url"
    raw_keys = [e.text for e in root.findall("s3:Contents/s3:Key", ns)]
    raw_prefixes = [e.text for e in root.findall("s3:CommonPrefixes/s3:Prefix", ns)]
    assert "ctl%01char" in raw_keys and "plus%2Bsign" in raw_keys
    assert sorted(urllib.parse.unquote(k) for k in raw_keys) == ["ctl\x01char", "plus+sign"]
    assert sorted(urllib.parse.unquote(p) for p in raw_prefixes) == ["sp ace/", "uni/"]
    assert all(" " not in p for p in raw_prefixes)
    # boto3 asks for encoding-type=url itself and decodes: the keys come back whole.
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(listed) == sorted(keys)


def test_more_than_a_thousand_keys_page_at_a_thousand(s3, bucket):
    keys = [f"many/{i:05d}" for i in range(1100)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b""), keys))
    pages = all_pages_v2(s3, Bucket=bucket, Prefix="many/")
    assert [p["KeyCount"] for p in pages] == [1000, 100]
    assert [o["Key"] for p in pages for o in p["Contents"]] == keys
    paginator = s3.get_paginator("list_objects")
    v1 = [o["Key"] for page in paginator.paginate(Bucket=bucket) for o in page.get("Contents", [])]
    assert v1 == keys


def test_listing_a_missing_bucket_is_no_such_bucket(s3):
    assert error_of(s3.list_objects_v2, Bucket="no-such-bucket-here")[:2] == ("NoSuchBucket", 404)


def test_max_keys_zero_returns_nothing_but_says_whether_more_exist(s3, bucket):
    put_all(s3, bucket, ["k"])
    resp = s3.list_objects_v2(Bucket=bucket, MaxKeys=0)
    assert resp["KeyCount"] == 0 and "Contents" not in resp
