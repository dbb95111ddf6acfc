"""Where the boards come from: devices.yaml, or places reserved from a labgrid coordinator."""
