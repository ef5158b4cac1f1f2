-- The trace an alert arrived in (W3C traceparent), so each delivery's span
-- continues the reading's trace; NULL when none was carried.
ALTER TABLE notify_source ADD COLUMN traceparent TEXT;
