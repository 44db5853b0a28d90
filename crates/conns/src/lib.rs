//! netvantage-conns: placeholder until its issue lands.
