"""Whisper's word pieces become whole words: a piece without a leading space continues the
word before it."""

from __future__ import annotations

from reach_vendor.engines.local.whisper import WordPiece, join_word_pieces


def test_a_piece_without_leading_space_joins_the_word_before() -> None:
    pieces = [
        WordPiece(" an", 0.0, 0.2, 0.9),
        WordPiece(" ill", 0.2, 0.4, 0.8),
        WordPiece("-disposed", 0.4, 0.9, 0.6),
        WordPiece(" man.", 1.0, 1.3, 0.95),
    ]
    words = join_word_pieces(pieces)
    assert [w.text for w in words] == ["an", "ill-disposed", "man."]
    joined = words[1]
    assert (joined.start, joined.end, joined.confidence) == (0.2, 0.9, 0.6)


def test_leading_piece_and_blank_pieces() -> None:
    # A first piece has nothing to join onto; a blank piece is no word.
    words = join_word_pieces(
        [WordPiece("-source", 0.0, 0.3, 0.7), WordPiece(" ", 0.3, 0.4, 0.1),
         WordPiece(" PBX.", 0.4, 0.8, 0.9)]
    )
    assert [w.text for w in words] == ["-source", "PBX."]


def test_every_word_keeps_its_pieces_text_and_span() -> None:
    pieces = [WordPiece(t, i * 0.5, i * 0.5 + 0.4, 0.9) for i, t in
              enumerate([" state", "-of", "-the", "-art", " plan", "'s", " end"])]
    words = join_word_pieces(pieces)
    assert [w.text for w in words] == ["state-of-the-art", "plan's", "end"]
    assert "".join(p.text for p in pieces).split() == [w.text for w in words]
    assert (words[0].start, words[0].end) == (0.0, 1.9)


def test_a_word_starts_at_its_first_letter_not_at_an_opening_quote() -> None:
    # whisper.cpp times an opening quote from the silence before the word it opens.
    words = join_word_pieces(
        [WordPiece(' "', 0.0, 4.8, 0.2), WordPiece("And", 4.99, 5.04, 0.7),
         WordPiece(" Mr", 5.06, 5.12, 0.9)]
    )
    assert [w.text for w in words] == ['"And', "Mr"]
    assert (words[0].start, words[0].end) == (4.99, 5.04)
