"""Rule-effect tracker: what each rule change did to the gateway's signals."""
