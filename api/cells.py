"""CSV cells as exports write them: the rules the record store also needs to keep a metric's
subjects cell with its row (api.metrics.kind), in a module that imports nothing, so that the
command line's loads do not import the web framework."""

# A spreadsheet runs a cell that begins with one of these as a formula (OWASP: CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_field(text: str) -> str:
    """A cell's text as csv.writer writes it in a record: quoted (quotes doubled) when it
    holds a comma, a quote or a line break."""
    if "," in text or '"' in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text
