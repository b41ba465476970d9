"""Allows `python -m telehealth`."""

from telehealth.cli import main

raise SystemExit(main())
