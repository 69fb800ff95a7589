"""Everything between ranks and around a run: transport, scenarios, results, CLI."""
