"""Feature engineering shared by every step of the example flow."""

import pandas as pd


def add_ratio(frame: pd.DataFrame, numerator: str, denominator: str) -> pd.DataFrame:
    """``frame`` with a ``numerator/denominator`` column."""
    return frame.assign(**{f"{numerator}/{denominator}": frame[numerator] / frame[denominator]})
