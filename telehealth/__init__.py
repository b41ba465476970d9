"""telehealth: remote consultation between grassroots clinics and upper-level hospitals."""

__version__ = "0.1.0"
