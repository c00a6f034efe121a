"""Several generators in one service: which exports load (``manifest``), the loaded ones by name with a
default alias and zero-downtime swaps (``registry``), the admin API (``admin``), and faces at
cacheable URLs (``faces``)."""
