from __future__ import annotations

import io
from pathlib import Path

import docx
import pytest

from corral.vector_stores.parsing import ParseError, extract_text


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "f"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("a.md", b"# Title\n\nWith some text."),
        ("a.json", b'{"k": "some text"}'),
        ("a.py", b"def f():\n    return 'some text'\n"),
        ("noext", "\ufeffsome text, with a BOM".encode()),
    ],
)
def test_text_of_any_kind_is_taken_as_it_is(tmp_path: Path, name: str, data: bytes) -> None:
    text = extract_text(write(tmp_path, data), name, 10_000)
    assert "some text" in text and not text.startswith("\ufeff")


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF with ``text`` in Helvetica, written by hand (no PDF writer here)."""
    stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    trailer = f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    return bytes(out + trailer.encode())


def test_pdf(tmp_path: Path) -> None:
    data = minimal_pdf("The warranty lasts two years")
    text = extract_text(write(tmp_path, data), "warranty.pdf", 100_000)
    assert "warranty lasts two years" in text


def test_docx(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_paragraph("The quarterly report is due on Friday.")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "owner", "Grace"
    out = io.BytesIO()
    document.save(out)
    text = extract_text(write(tmp_path, out.getvalue()), "report.docx", 100_000)
    assert "quarterly report" in text and "owner | Grace" in text


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("a.bin", b"\x00\x01\x02\x03", "unsupported_file"),
        ("a.txt", b"\xff\xfe\xfa not utf-8", "unsupported_file"),
        ("a.pdf", b"%PDF-1.4 broken", "invalid_file"),
        ("a.docx", b"PK\x03\x04 broken", "invalid_file"),
        ("a.txt", b"   \n\n  ", "invalid_file"),
        ("a.txt", b"x" * 2000, "invalid_file"),  # past the text bound
    ],
)
def test_refused_files_say_why(tmp_path: Path, name: str, data: bytes, code: str) -> None:
    with pytest.raises(ParseError) as e:
        extract_text(write(tmp_path, data), name, 1024)
    assert e.value.code == code and e.value.message
