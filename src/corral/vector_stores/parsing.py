"""A file's text: plain text of any kind (Markdown, JSON, code, CSV …) as it is; PDF
through pypdf and DOCX through python-docx (both pure Python, on PyPI). Anything else is
refused as ``unsupported_file``. Runs on a worker thread: parsing a PDF is CPU work."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

PDF_MAGIC = b"%PDF-"
ZIP_MAGIC = b"PK\x03\x04"


class ParseError(Exception):
    """Why a file gave no text; ``code`` is the vector store file's ``last_error`` code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def extract_text(path: Path, filename: str, max_bytes: int) -> str:
    data = path.read_bytes()
    name = filename.lower()
    if data.startswith(PDF_MAGIC) or name.endswith(".pdf"):
        text = _pdf(data)
    elif name.endswith(".docx") or (data.startswith(ZIP_MAGIC) and _is_docx(data)):
        text = _docx(data)
    else:
        text = _plain(data, filename)
    if len(text.encode()) > max_bytes:
        raise ParseError("invalid_file", f"The file's text is longer than {max_bytes} bytes.")
    if not text.strip():
        raise ParseError("invalid_file", "The file has no text to index.")
    return text


def _plain(data: bytes, filename: str) -> str:
    if b"\x00" in data[:65536]:
        raise ParseError("unsupported_file", f"{filename} is a binary file of a kind not indexed.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ParseError("unsupported_file", f"{filename} is not UTF-8 text.") from None


def _pdf(data: bytes) -> str:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    # A malformed PDF makes pypdf raise almost anything; each is the file's fault.
    except Exception as exc:
        raise ParseError("invalid_file", f"The PDF could not be read: {exc}") from None


def _is_docx(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return "word/document.xml" in z.namelist()
    except zipfile.BadZipFile:
        return False


def _docx(data: bytes) -> str:
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # as with PDFs: whatever a malformed file raises
        raise ParseError("invalid_file", f"The DOCX could not be read: {exc}") from None
    lines = [p.text for p in document.paragraphs]
    for table in document.tables:
        lines += [" | ".join(cell.text for cell in row.cells) for row in table.rows]
    return "\n".join(lines)
