"""The book-wide contact index behind PHONE_SHARED and BANK_SHARED (see pipeline/book/index.py)."""
