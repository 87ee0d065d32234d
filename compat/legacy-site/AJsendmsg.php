<?php

//将消息插入数据库
require('./AJconn.php');

$rec=$_POST['rec'];
$content=$_POST['content'];
$pos=$_COOKIE['username'];

$sql="insert into msg(rec,pos,content) values('$rec','$pos','$content')";

echo mysql_query($sql,$conn)?'OK':'FIAL';


?>
