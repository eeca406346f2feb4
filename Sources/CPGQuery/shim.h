// PostgreSQL's own parser, as libpg_query (Debian's libpg-query-dev): the raw-SQL route splits and
// classifies statements with it instead of matching text.
#include <pg_query.h>
