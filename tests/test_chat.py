from PIL import Image

from vlmguard.chat import images, last_user, to_openai, to_processor, user_chat, with_user_text


def test_user_chat_and_helpers():
    im = Image.new("RGB", (8, 8))
    chat = user_chat("what is this?", im, system="be safe")
    assert [m["role"] for m in chat] == ["system", "user"]
    assert images(chat) == [im]
    assert last_user(chat) == ("what is this?", im)
    new = with_user_text(chat, "refined")
    assert last_user(new) == ("refined", im) and last_user(chat)[0] == "what is this?"


def test_wire_and_processor_forms():
    chat = user_chat("hi", Image.new("RGB", (8, 8), (0, 255, 0)))
    wire = to_openai(chat)
    assert wire[0]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    msgs, pil = to_processor(to_openai(chat))  # a wire chat reads back: data URLs decode to the same pixels
    assert msgs[0]["content"][0] == {"type": "image"} and pil[0].getpixel((0, 0)) == (0, 255, 0)
