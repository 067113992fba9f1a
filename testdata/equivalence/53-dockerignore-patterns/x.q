x.q
