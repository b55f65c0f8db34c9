"""The passes: IR → IR rewrites shared by every backend (``rewrite``: algebraic rules, CSE, fusion, idioms;
``memory``: fewer passes over memory)."""
