-- The ticket trail: the incident's FreeScout conversation id, next to its Slack thread.
-- Derived from the snapshot (the incidents actor keeps the id on the incident), so the
-- mirror's writes need no new column and a rehydrated incident keeps its conversation.

ALTER TABLE incident_state
    ADD COLUMN IF NOT EXISTS freescout_conversation_id bigint
    GENERATED ALWAYS AS ((snapshot ->> 'freescout_conversation_id')::bigint) STORED;
