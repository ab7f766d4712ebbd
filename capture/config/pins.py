"""Raspberry Pi pin names to BCM GPIO numbers, so one pin used twice is caught.

gpiozero accepts the same pin as 17, 'GPIO17', 'BCM17', 'BOARD11', 'J8:11' or
'WPI0'; `capture check` compares them by BCM number. The tables are the
40-pin header of every Pi since the B+ (Pi 5 included).
"""

from __future__ import annotations

import re

#: Physical header pin -> BCM GPIO number; the others are power or ground.
BOARD_TO_BCM: dict[int, int] = {
    3: 2, 5: 3, 7: 4, 8: 14, 10: 15, 11: 17, 12: 18, 13: 27, 15: 22, 16: 23,
    18: 24, 19: 10, 21: 9, 22: 25, 23: 11, 24: 8, 26: 7, 27: 0, 28: 1, 29: 5,
    31: 6, 32: 12, 33: 13, 35: 19, 36: 16, 37: 26, 38: 20, 40: 21,
}  # fmt: skip

#: wiringPi number -> BCM GPIO number.
WPI_TO_BCM: dict[int, int] = {
    0: 17, 1: 18, 2: 27, 3: 22, 4: 23, 5: 24, 6: 25, 7: 4, 8: 2, 9: 3, 10: 8,
    11: 7, 12: 10, 13: 9, 14: 11, 15: 14, 16: 15, 21: 5, 22: 6, 23: 13, 24: 19,
    25: 26, 26: 12, 27: 16, 28: 20, 29: 21, 30: 0, 31: 1,
}  # fmt: skip

_PIN = re.compile(r"(?i)^(GPIO|BCM|BOARD|J8:|WPI)?(\d{1,2})$")


def bcm_number(pin: int | str) -> int:
    """The BCM GPIO number of a pin spelt any way gpiozero accepts; ValueError if none."""
    if isinstance(pin, int):
        return pin
    match = _PIN.match(pin.strip())
    if not match:
        raise ValueError(f"pin {pin!r}: use 17, 'GPIO17', 'BCM17' or 'BOARD11'")
    prefix, number = (match.group(1) or "").upper(), int(match.group(2))
    if prefix in ("BOARD", "J8:"):
        if number not in BOARD_TO_BCM:
            raise ValueError(f"header pin {number} is power or ground, not a GPIO")
        return BOARD_TO_BCM[number]
    if prefix == "WPI":
        if number not in WPI_TO_BCM:
            raise ValueError(f"wiringPi pin {number} does not exist")
        return WPI_TO_BCM[number]
    return number
