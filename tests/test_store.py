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
