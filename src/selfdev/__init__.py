"""selfdev: an open implementation of Self-Developing (Ishibashi et al., NAACL 2025).

An LLM (the *algorithm factory*) writes model-merging algorithms; each one is run on the task
vectors of expert models and scored by the accuracy of the merged model on a math dev set.
"""

__version__ = "0.1.0"
