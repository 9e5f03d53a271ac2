from vlmguard.store import JsonlStore


def test_append_skip_and_torn_line(tmp_path):
    path = tmp_path / "r.jsonl"
    store = JsonlStore(path)
    store.append([{"id": "a", "v": 1}, {"id": "b", "v": 2}])
    store.append([{"id": "a", "v": 9}])  # already stored: not written twice
    with open(path, "ab") as f:
        f.write(b'{"id": "c", "v"')  # a kill -9 in the middle of a write
    again = JsonlStore(path)
    assert set(again.records) == {"a", "b"} and again.records["a"]["v"] == 1
    again.append([{"id": "c", "v": 3}])
    lines = path.read_text().splitlines()
    assert [line[:9] for line in lines] == ['{"id": "a', '{"id": "b', '{"id": "c']


def test_composite_keys(tmp_path):
    store = JsonlStore(tmp_path / "r.jsonl", key=lambda r: f"{r['id']}|{r['defence']}")
    store.append([{"id": "1", "defence": "none"}, {"id": "1", "defence": "guard"}])
    assert len(JsonlStore(tmp_path / "r.jsonl", key=lambda r: f"{r['id']}|{r['defence']}")) == 2


def test_malformed_middle_line_raises_and_keeps_file(tmp_path):
    import pytest

    from vlmguard.errors import VLMGuardError

    path = tmp_path / "r.jsonl"
    JsonlStore(path).append([{"id": "a"}, {"id": "b"}])
    with open(path, "ab") as f:
        f.write(b'{"id": "c", oops\n{"id": "d"}\n{"id": "e"}\n')  # a bad line with good records after it
    before = path.read_bytes()
    with pytest.raises(VLMGuardError, match=r"r\.jsonl, line 3: .*repair or delete that line"):
        JsonlStore(path)
    assert path.read_bytes() == before  # nothing cut: d and e are still there
    lines = before.decode().splitlines()
    lines[2] = '{"id": "c"}'  # the user repairs the line
    path.write_text("\n".join(lines) + "\n")
    assert set(JsonlStore(path).records) == {"a", "b", "c", "d", "e"}


def test_unparseable_last_line_is_cut(tmp_path):
    path = tmp_path / "r.jsonl"
    JsonlStore(path).append([{"id": "a"}])
    with open(path, "ab") as f:
        f.write(b'{"id": "b", \x00garbage\n')  # newline present, but the record is torn
    store = JsonlStore(path)
    assert set(store.records) == {"a"} and path.read_text() == '{"id": "a"}\n'


def test_put_replaces_and_survives_reload(tmp_path):
    path = tmp_path / "r.jsonl"
    store = JsonlStore(path)
    store.append([{"id": "a", "judge": None}, {"id": "b", "judge": 1}])
    store.append([{"id": "a", "judge": 0}])  # append skips a stored key
    assert store.records["a"]["judge"] is None
    store.put([{"id": "a", "judge": 1}])  # put replaces it
    assert store.records["a"]["judge"] == 1 and len(store) == 2
    again = JsonlStore(path)
    assert again.records == {"a": {"id": "a", "judge": 1}, "b": {"id": "b", "judge": 1}}
    assert len(path.read_text().splitlines()) == 3  # the newer version appended; the last line wins
