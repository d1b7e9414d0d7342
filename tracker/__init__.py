"""Rule-effect tracker: what each rule change did to the gateway's signals."""

METRICS = ("phase_diff", "entropy_rate", "creative_band", "risk_band")
# Short names used in rules_effects.csv columns (pre_phase, d_risk, ...), in METRICS order.
SHORT = ("phase", "entropy", "creative", "risk")
