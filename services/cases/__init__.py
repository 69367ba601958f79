"""A case's story: the one pure fold of its admitted acts, and the judgement of a new act (contract 11.1)."""
