"""The results study: held-out leaderboard and arms (`tables`), mergekit baselines (`baselines`),
bootstrap intervals (`stats`), plots (`plots`), summaries and HTML (`report`), lineage (`lineage`)."""
