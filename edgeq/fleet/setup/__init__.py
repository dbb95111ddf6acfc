"""`devices setup`: offline board set-up (plan, wheel cache, scripts run on the board)."""
