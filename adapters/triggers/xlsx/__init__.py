"""The ``xlsx`` trigger: Excel workbooks dropped into a folder become events, one per row of a
sheet. Needs the ``xlsx`` extra (openpyxl): ``pip install 'nextstep-whatsapp[xlsx]'``.

::

    trigger:
      xlsx:
        path: "inbox/loans/*.xlsx"  # a glob, relative to the config file's folder
        sheet: Export               # default: the first sheet
        settle: 2s                  # a file is complete once its size has not changed this long
        header_map: {phone: Mobile}  # event field <- column (or a list of alternative columns)
        batch: 1000                 # rows per ledger transaction
        done_dir: done              # where finished files go (relative to the file's folder)
        failed_dir: failed          # where unreadable files go

It is the csv trigger with a sheet for a file: the same watching (renamed in, or settled), the
same progress (content hash + last committed row, committed with each batch: no row twice after
a crash), the same ``<file>.errors.csv`` for refused rows and the same ``done/``/``failed/``.
Values are text as the sheet shows them (:mod:`.cells`: a phone stored as a number keeps the
leading zeros its format shows, dates become ISO text). The header is the first non-empty row;
empty rows are skipped; a row with an error cell (``#N/A``…) or a value in a column without a
header is quarantined. Why openpyxl's read-only mode and not python-calamine (faster, measured by
``bench/xlsx_ingest.py``): calamine does not give number formats, so a zero-padded phone would
lose its leading zero, and it holds the whole sheet in memory.
"""

from nextstep.adapters.triggers.xlsx.trigger import XlsxTrigger

__all__ = ["XlsxTrigger"]
