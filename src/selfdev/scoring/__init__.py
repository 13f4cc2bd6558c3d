"""Scoring a merged model: math data (`gsm8k`), prompts as data (`prompts`), answer checking (`answer`),
greedy evaluation (`evaluate`), M0 + merge scoring (`merge`) and program files checked and scored (`programs`)."""
