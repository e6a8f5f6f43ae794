"""Contact ids drawn from the bulk pool are what ``str(uuid.uuid4())`` would give."""

from __future__ import annotations


def test_pooled_contact_ids_are_canonical_random_uuid4_texts() -> None:
    import uuid

    from contacts_cli.service.ids import new_contact_id, uuid4_texts

    texts = uuid4_texts(5000) + [new_contact_id() for _ in range(3000)]
    assert len(set(texts)) == len(texts)
    for text in texts:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert {text[19] for text in texts} == set("89ab")
