"""``bigbench bench``: a matrix of models × batch sizes × precisions × modes, measured."""
