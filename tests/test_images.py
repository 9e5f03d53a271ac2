import base64

import pytest
from PIL import Image

from vlmguard.errors import VLMGuardError
from vlmguard.images import load_image, to_data_url


def test_loads_paths_relative_to_base(tmp_path):
    Image.new("RGBA", (30, 20), (1, 2, 3, 4)).save(tmp_path / "a.png")
    im = load_image("a.png", base_dir=tmp_path)
    assert im.mode == "RGB" and im.size == (30, 20)


def test_data_url_round_trip(tmp_path):
    Image.new("RGB", (8, 8), (255, 0, 0)).save(tmp_path / "r.png")
    url = to_data_url(tmp_path / "r.png")
    assert url.startswith("data:image/png;base64,")
    assert load_image(url).getpixel((0, 0)) == (255, 0, 0)
    assert load_image(to_data_url(Image.new("RGB", (4, 4)))).size == (4, 4)


@pytest.mark.parametrize("content, expected", [
    (None, "image not found"),
    (b"this is not an image at all", "is not an image"),
    ("truncated", "corrupt or truncated"),
])
def test_bad_images_name_the_file(tmp_path, content, expected):
    path = tmp_path / "bad.png"
    if content == "truncated":
        Image.new("RGB", (64, 64), (9, 9, 9)).save(path)
        path.write_bytes(path.read_bytes()[:60])
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(VLMGuardError, match=expected) as e:
        load_image(path)
    assert str(path) in str(e.value)


def test_bad_data_url():
    with pytest.raises(VLMGuardError, match="malformed data URL"):
        load_image("data:image/png;base64,@@@")
    with pytest.raises(VLMGuardError, match="is not an image"):
        load_image("data:image/png;base64," + base64.b64encode(b"nope").decode())
