xy.q
