/* placeholder until implemented */ typedef int lb_placeholder_t;
