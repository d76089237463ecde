"""Built-in halting strategies (trm_halting.strategies): act_q, act_q_continue and fixed."""
